"""``RunCache``: the per-run aggregates the pages read, kept in memory on ``app.state.run_cache``.

It holds, per run, the ``RunFrame`` (per-clip columns), and built on first use: the unit-norm
embedding matrix (for neighbours of a run never projected), the cloud's packed columns, the
nearest clips computed from them and the audio-quality flags (per data set version); per data set,
its class distribution. Flags are never cached.

A run's entry is rebuilt when its ``frame_version`` changes (status, first predictions / scores /
projection, a new ``earmark analyze``); that check is a few index lookups and runs at most every
``recheck_s`` seconds. One loader at a time: a second request for the same run waits and reuses it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store import clips as clips_store
from app.store import datasets as datasets_store
from app.store import neighbors as neighbors_store
from app.store import predictions
from app.store.clip_stats import STAT_NAMES, clip_stat_arrays, label_doubts, quality_arrays
from app.store.cloud import CloudBody, encode_cloud, with_flags
from app.store.cloud_column import encode_codes, encode_column
from app.store.flags import flag_map
from app.store.frame import SPLITS, RunFrame, frame_version, load_frame
from app.store.models import Dataset, Run
from ml.analysis.quality import flags_from_columns
from ml.analysis.slices import factorize

RECHECK_S = 5.0
T = TypeVar("T")


@dataclass
class SliceColumns:
    """Per-clip columns to slice a run by, aligned with its frame's ``clip_ids``."""

    stats: dict[str, np.ndarray]  # app.store.clip_stats.STAT_NAMES (float64, NaN unknown) and "speaker" (object)
    meta: dict[str, np.ndarray]  # metadata column -> float64 (number) or object (text / boolean), None = missing
    meta_kinds: dict[str, str]  # metadata column -> number | text | boolean, in the data set's order
    doubted: np.ndarray | None  # bool: the analysis doubts the label (None: the run was not analyzed)
    factorized: dict[str, tuple[np.ndarray, list[str]]] = field(default_factory=dict)

    def factors(self, column: str) -> tuple[np.ndarray, list[str]]:
        """(int codes, -1 = missing; value names) of a text or boolean column ("speaker" or
        "meta.<name>"), built once (``ml.analysis.slices.factorize``): slices and filters compare ints."""
        if column not in self.factorized:
            values = self.stats["speaker"] if column == "speaker" else self.meta[column.partition(".")[2]]
            self.factorized[column] = factorize(values)
        return self.factorized[column]


@dataclass
class _RunEntry:
    """What the cache holds for one run."""

    frame: RunFrame
    checked_at: float
    embeddings: tuple[np.ndarray, np.ndarray] | None = None  # (clip ids (N,), unit-norm float32 (N, D))
    cloud: CloudBody | None = None
    nearest: dict[tuple[int, int], list[tuple[int, float]]] = field(default_factory=dict)
    columns: SliceColumns | None = None
    derived: dict = field(default_factory=dict)  # key -> what a view computed from the run's entry


class RunCache:
    """Per-run frames, embeddings and cloud bodies, and per-data-set class distributions."""

    def __init__(self, recheck_s: float = RECHECK_S):
        self.recheck_s = recheck_s
        self._runs: dict[int, _RunEntry] = {}
        self._distributions: dict[tuple, dict[str, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def _entry(self, session: Session, run: Run) -> _RunEntry:
        entry = self._runs.get(run.id)
        now = time.monotonic()
        if entry is not None and now - entry.checked_at < self.recheck_s:
            return entry
        version = frame_version(session, run)
        if entry is not None and entry.frame.version == version:
            entry.checked_at = now
            return entry
        with self._lock:
            entry = self._runs.get(run.id)
            if entry is None or entry.frame.version != version:
                entry = _RunEntry(load_frame(session, run, version), time.monotonic())
                self._runs[run.id] = entry
        return entry

    def frame(self, session: Session, run: Run) -> RunFrame:
        """The run's per-clip columns (loaded, or rebuilt when stale)."""
        return self._entry(session, run).frame

    def embeddings(self, session: Session, run: Run) -> tuple[np.ndarray, np.ndarray]:
        """(clip ids int64 (N,), unit-norm float32 (N, D)) of the run."""
        entry = self._entry(session, run)
        if entry.embeddings is None:
            ids, mat = predictions.embeddings(session, run.id)
            if not len(ids):
                mat = np.zeros((0, 1), np.float32)
            unit = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
            entry.embeddings = (ids, unit.astype(np.float32))
        return entry.embeddings

    def cloud(self, session: Session, run: Run, with_flag_column: bool = True) -> tuple[dict, bytes]:
        """(legend, body) of the run's cloud (``app.store.cloud``); the flag column is read fresh."""
        entry = self._entry(session, run)
        if entry.cloud is None:
            entry.cloud = encode_cloud(entry.frame)
        return with_flags(entry.cloud, flag_map(session, run.dataset_id) if with_flag_column else {})

    def nearest(self, session: Session, run: Run, clip_id: int, k: int = 10) -> list[tuple[int, float]]:
        """The ``k`` nearest clips of ``clip_id``: the lists ``earmark project`` stored, else cosine over the
        embeddings (memoised). (clip id, similarity), best first."""
        stored = neighbors_store.neighbors_of(session, run.id, clip_id, k)
        if stored is not None:
            return stored
        entry = self._entry(session, run)
        if (clip_id, k) not in entry.nearest:
            ids, unit = self.embeddings(session, run)
            entry.nearest[(clip_id, k)] = neighbors_store.top_cosine(ids, unit, clip_id, k)
        return entry.nearest[(clip_id, k)]

    def slice_columns(self, session: Session, run: Run) -> SliceColumns:
        """The run's signal stats, speakers, metadata and label doubts, aligned with its frame (built once)."""
        entry = self._entry(session, run)
        if entry.columns is None:
            ids = entry.frame.clip_ids
            entry.columns = SliceColumns(
                stats=clip_stat_arrays(session, run.dataset_id, ids),
                meta=clips_store.meta_arrays(session, run.dataset_id, ids),
                meta_kinds=datasets_store.meta_columns(session, run.dataset_id),
                doubted=label_doubts(session, run.id, ids))
        return entry.columns

    def cloud_column(self, session: Session, run: Run, name: str) -> dict:
        """``name`` (``meta.<column>``, ``stat.<stat>`` or ``speaker``) encoded for the cloud's points
        (``app.store.cloud_column``), in the order of ``/api/cloud.bin``; built once per run."""
        columns = self.slice_columns(session, run)
        source, _, col = name.partition(".")
        if name == "speaker":
            values, kind = columns.stats["speaker"], "text"
        elif source == "stat" and col in STAT_NAMES:
            values, kind = columns.stats[col], "number"
        elif source == "meta" and col in columns.meta:
            values, kind = columns.meta[col], columns.meta_kinds.get(col, "text")
        else:
            known = [f"meta.{m}" for m in columns.meta] + [f"stat.{s}" for s in STAT_NAMES] + ["speaker"]
            raise NotFound(f"no column {name!r} to colour the cloud by", detail=f"known: {', '.join(known)}",
                           hint="pick one in the cloud's colour menu")

        def build() -> dict:
            entry = self._entry(session, run)
            self.cloud(session, run, with_flag_column=False)
            pos = np.searchsorted(entry.frame.clip_ids, entry.cloud.clip_ids)
            if kind == "number":
                return dict(encode_column(name, kind, values[pos]), run_id=run.id)
            codes, names = columns.factors(name)
            return dict(encode_codes(name, kind, codes[pos], names), run_id=run.id)

        return self.derived(session, run, ("cloud_column", name), build)

    def quality_flags(self, session: Session, run: Run) -> dict[str, np.ndarray]:
        """Per audio-quality finding (``ml.analysis.quality.FINDINGS``), which of the run's clips it flags
        (bool, aligned with the frame), from the clips' stored stats; rebuilt when the data set is
        ingested again (its ``updated_at``), which is what fills or changes them."""
        dataset = datasets_store.get_dataset(session, run.dataset_id)
        version = str(dataset.updated_at) if dataset is not None else ""

        def build() -> dict[str, np.ndarray]:
            q = quality_arrays(session, run.dataset_id, self._entry(session, run).frame.clip_ids)
            return flags_from_columns(q["peak"], q["plateau_share"], q["dc"], q["band_step_db"])

        return self.derived(session, run, ("quality_flags", version), build)

    def derived(self, session: Session, run: Run, key: tuple, build: Callable[[], T]) -> T:
        """``build()``, memoised under ``key`` for as long as the run's entry is current (slices, say)."""
        entry = self._entry(session, run)
        if key not in entry.derived:
            entry.derived[key] = build()
        return entry.derived[key]

    def class_distribution(self, session: Session, dataset: Dataset) -> dict[str, dict[str, int]]:
        """split -> label -> clip count (cached per data set version), the usual splits first."""
        key = (dataset.id, dataset.n_clips, str(dataset.updated_at))
        if key not in self._distributions:
            dist: dict[str, dict[str, int]] = {}
            for split, label, n in datasets_store.label_counts(session, dataset.id):
                dist.setdefault(split, {})[label] = n
            self._distributions[key] = {s: dict(sorted(dist[s].items())) for s in SPLITS if s in dist} | {
                s: dict(sorted(v.items())) for s, v in dist.items() if s not in SPLITS}
        return self._distributions[key]

    def warm(self, session: Session, run: Run) -> int:
        """Load everything a first page of ``run`` needs; returns its number of clips."""
        frame = self.frame(session, run)
        self.cloud(session, run, with_flag_column=False)
        self.embeddings(session, run)
        columns = self.slice_columns(session, run)
        for name, kind in columns.meta_kinds.items():
            if kind != "number" and name in columns.meta:
                columns.factors(f"meta.{name}")
        columns.factors("speaker")
        return len(frame.clip_ids)
