"""earmark's Python API: bring your own model's predictions and embeddings, analyse, compare.

    import earmark
    store = earmark.open_store()                      # EARMARK_* settings, or open_store("postgresql://...")
    run = store.import_run("speech", "my-kws", keys=paths, probs=probs, classes=classes,
                           embeddings=embs, model="my-kws v3")
    store.project(run.run_id); store.analyze(run.run_id)
    store.compare("melcnn-run", run.run_id)

The API is the command line's code path: each method calls the ``app.pipeline`` function the
matching ``earmark`` command calls (``import-run``, ``export-run``, ``project``, ``analyze``,
``compare``), with the same checks and the same errors (``earmark.EarmarkError``).
"""

from __future__ import annotations

from app.errors import EarmarkError
from earmark.client import Earmark, open_store

__all__ = ["Earmark", "EarmarkError", "open_store"]
