"""The ``Earmark`` handle of the Python API: a store plus the pipeline calls the CLI makes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.pipeline.common import Progress
from app.run_files import from_arrays, from_dataframe
from app.store.db import Store
from app.store.db import open_store as _open


def open_store(url: str | None = None, data_dir: str | os.PathLike | None = None) -> Earmark:
    """The store at ``url`` (an SQLAlchemy URL), else the configured one (``EARMARK_DATABASE_URL``, or
    the SQLite file under ``EARMARK_DATA_DIR``), schema brought to head."""
    kw: dict[str, Any] = {}
    if url:
        kw["database_url"] = url
    if data_dir is not None:
        kw["data_dir"] = Path(data_dir)
    return Earmark(_open(Settings(**kw)))


@dataclass
class Clips:
    """An ingested data set's clips, for computing your model's outputs: paths relative to ``root``."""

    dataset: str
    root: Path
    ids: np.ndarray  # (N,) int64
    paths: np.ndarray  # (N,) str, the keys an import takes
    labels: np.ndarray  # (N,) str, as filed
    splits: np.ndarray  # (N,) str: train | validation | test


class Earmark:
    """One store and what you can do with it from Python. Methods return the pipeline's summaries."""

    def __init__(self, store: Store):
        self.store = store

    def clips(self, dataset: str | int | None = None) -> Clips:
        """The clips of an ingested data set (the newest when None), in clip id order."""
        from app.store.clips import load_clips
        from app.store.datasets import resolve_dataset

        with self.store.session() as s:
            ds = resolve_dataset(s, dataset)
            t = load_clips(s, ds.id)
            return Clips(ds.name, Path(ds.root), np.asarray(t.ids, dtype=np.int64), np.asarray(t.paths),
                         np.asarray(t.labels), np.asarray(t.splits))

    def import_run(self, dataset: str | int, name: str, keys: Any, *, classes: Any, probs: Any = None,
                   logits: Any = None, embeddings: Any = None, pred: Any = None, confidence: Any = None,
                   model: str | None = None, model_version: str | None = None, key_kind: str = "path",
                   task: str | None = None, oof: bool = False, progress: Progress | None = None):
        """Import a run from arrays (numpy, lists or torch tensors): ``keys`` are clip paths relative to
        the data set root (or clip ids with ``key_kind="clip_id"``), ``probs`` (N, C) or ``logits``
        (N, C) in the order of ``classes``, optional ``embeddings`` (N, D); or ``pred`` + ``confidence``
        alone for a reduced run. Returns ``app.pipeline.import_run.ImportSummary``."""
        from app.pipeline.import_run import import_run

        rf = from_arrays(keys, classes=list(classes), key_kind=key_kind, probs=probs, logits=logits, pred=pred,
                         confidence=confidence, embeddings=embeddings, model=model, model_version=model_version,
                         task=task)
        return import_run(self.store, rf, dataset, name, task=task, oof=oof, progress=progress)

    def import_dataframe(self, df: Any, dataset: str | int, name: str, *, classes: Any = None, logits: bool = False,
                         model: str | None = None, task: str | None = None, oof: bool = False,
                         progress: Progress | None = None):
        """Import a run from a pandas DataFrame with the run file's columns (``path`` or ``clip_id``;
        ``probs``/``logits`` list columns or ``prob_<class>`` columns; optional ``embedding``)."""
        from app.pipeline.import_run import import_run

        rf = from_dataframe(df, classes=list(classes) if classes is not None else None, logits=logits, model=model)
        return import_run(self.store, rf, dataset, name, task=task, oof=oof, progress=progress)

    def import_file(self, path: str | os.PathLike, dataset: str | int, name: str, **kw: Any):
        """``earmark import-run PATH``: a Parquet, NPZ or CSV run file (keywords as ``import_run``'s pipeline)."""
        from app.pipeline.import_run import import_run

        return import_run(self.store, path, dataset, name, **kw)

    def export_run(self, run: str | int, out: str | os.PathLike) -> Path:
        """``earmark export-run RUN --out FILE``: the run as a Parquet run file; returns its path."""
        from app.pipeline.import_run import export_run

        return export_run(self.store, run, out)[0]

    def project(self, run: str | int | None = "latest", seed: int | None = 0, neighbors: bool = True):
        """``earmark project``: the 2-D cloud and each clip's nearest clips."""
        from app.pipeline.project import project_run

        return project_run(self.store, run, seed=seed, neighbors=neighbors)

    def analyze(self, run: str | int | None = "latest", seed: int = 0):
        """``earmark analyze``: every detector the run's outputs allow; returns the summary (with what it skipped)."""
        from app.pipeline.analyze import analyze_run

        return analyze_run(self.store, run, seed=seed)

    def compare(self, a: str | int | None, b: str | int | None) -> dict:
        """``earmark compare A B``: per-split metrics, deltas, confusions and fixed/broke clips (a is the baseline)."""
        from app.pipeline.compare import compare_runs, pick_runs

        with self.store.session() as s:
            ra, rb = pick_runs(s, a, b)
            return compare_runs(s, ra, rb)

    def runs(self) -> list:
        """``earmark runs``: every run with its per-split accuracy and macro-F1."""
        from app.store.runs import list_runs

        with self.store.session() as s:
            return list_runs(s)

    def findings(self, run: str | int | None = "latest") -> list:
        """The run's ranked findings (after ``analyze``)."""
        from app.store.findings import findings_of
        from app.store.runs import resolve_run

        with self.store.session() as s:
            return findings_of(s, resolve_run(s, run).id)
