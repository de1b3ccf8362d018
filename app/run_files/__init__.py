"""Run files: another model's predictions and embeddings, read, validated and written (no store).

One format goes both ways: a Parquet file with one row per clip, keyed by ``path`` (relative to the
data set root, as earmark stores it) or ``clip_id``; ``probs`` or ``logits`` (list<float>); an
optional ``embedding`` (list<float>, any dimension); ``pred`` + ``confidence`` alone when there are
no probabilities (a reduced run); ``oof`` (bool) and ``oof_probs`` for out-of-sample probabilities.
The class order and the model are key-value metadata (``earmark.classes``, a JSON list;
``earmark.model``). NumPy ``.npz``, CSV (``prob_<class>`` columns), a DataFrame and plain arrays or
tensors are read into the same ``RunFile`` through the same checks (``record.from_arrays``). Every
reader validates fully before returning, so an import never starts on a bad file; problems are
``EarmarkError`` s that say what to fix. Arrays in, arrays out: nothing here touches the store.

Modules: ``record`` (RunFile, checks), ``readers``, ``writer``, ``match`` (class map, keys → clips).
"""

from app.run_files.match import ClassMap, KeyMatch, map_classes, match_keys
from app.run_files.readers import from_dataframe, from_table, read_csv, read_npz, read_parquet, read_run_file
from app.run_files.record import RunFile, as_numpy, from_arrays
from app.run_files.writer import to_table, write_parquet

__all__ = ["ClassMap", "KeyMatch", "RunFile", "as_numpy", "from_arrays", "from_dataframe", "from_table",
           "map_classes", "match_keys", "read_csv", "read_npz", "read_parquet", "read_run_file", "to_table",
           "write_parquet"]
