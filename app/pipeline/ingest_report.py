"""What an ingest found: the ``IngestReport`` dataclass, built from the store, and the leakage check."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session

from app.store.clip_stats import quality_arrays
from app.store.clips import split_counts
from app.store.datasets import reject_summary
from app.store.models import Dataset

EXAMPLES_PER_REASON = 5  # first paths shown per reject reason
LEAKAGE_LIMIT = 200  # entries kept per leakage list (the counts are always complete)


@dataclass
class IngestReport:
    """Summary of one ingest, as printed by the CLI and returned to callers."""

    dataset_id: int
    name: str
    root: str
    layout: str  # speech_commands | test_archive | split_folders | folders | manifest | split_manifests | name_pattern
    split_source: str  # lists | hash | archive | folders | column | files | speaker_hash | file_hash | mixed_hash
    unchanged: bool  # True when the folder had not changed and the stored data set was kept as is
    n_clips: int
    n_rejects: int
    splits: dict[str, int]  # split -> clips
    labels: list[str]
    n_speakers: int
    speakers_per_split: dict[str, int]
    rejects: dict[str, dict]  # reason -> {"count": n, "examples": [{"path", "detail"}, ...]}
    list_stats: dict
    leakage: dict
    n_noise_files: int
    n_cutoff_signal: int = 0  # clips whose speech is still on in the last 50 ms (first cut-off indicator)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    meta_columns: dict[str, str] = field(default_factory=dict)  # metadata column -> number | text | boolean
    speaker_leakage: str = "not_checked"  # checked | partial | not_checked
    notes: list[str] = field(default_factory=list)  # how the layout was read (patterns, joins, renamed columns)
    command: str = ""  # the explicit `earmark ingest` command that reads the data set this way
    quality: dict[str, int] = field(default_factory=dict)  # audio-quality finding -> clips it flags (the rest: 0)
    quality_unmeasured: int = 0  # clips without the audio-quality stats (ingested before migration 0006)

    @property
    def clips_per_s(self) -> float:
        """Files (clips and rejects) processed per second of wall time."""
        return (self.n_clips + self.n_rejects) / self.seconds if self.seconds > 0 else 0.0

    @property
    def has_leakage(self) -> bool:
        """True when any leakage check found something."""
        return any((self.leakage.get("counts") or {}).values())


def leakage_report(rows: Iterable[Sequence], in_both_lists: Sequence[str] = ()) -> dict:
    """Leakage across splits from ``(path, split, speaker, content_hash)`` rows.

    Files in more than one split (listed in both split lists), speakers whose clips span
    splits, and identical decoded audio in different splits. ``duplicate_audio`` also counts
    identical audio inside one split (extra copies beyond the first).
    """
    by_speaker: dict[str, set[str]] = defaultdict(set)
    by_hash: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path, split, speaker, content_hash in rows:
        if speaker:
            by_speaker[speaker].add(split)
        by_hash[content_hash].append((path, split))
    speakers = sorted((s, sorted(sp)) for s, sp in by_speaker.items() if len(sp) > 1)
    identical = []
    duplicates = 0
    for content_hash, items in by_hash.items():
        if len(items) < 2:
            continue
        duplicates += len(items) - 1
        splits = sorted({s for _, s in items})
        if len(splits) > 1:
            identical.append({"content_hash": content_hash, "splits": splits,
                              "paths": sorted(p for p, _ in items)[:10], "n": len(items)})
    identical.sort(key=lambda d: (-d["n"], d["paths"][0]))
    files = sorted(in_both_lists)
    return {
        "files_in_several_splits": files[:LEAKAGE_LIMIT],
        "speakers_in_several_splits": [{"speaker": s, "splits": sp} for s, sp in speakers[:LEAKAGE_LIMIT]],
        "identical_audio_across_splits": identical[:LEAKAGE_LIMIT],
        "counts": {
            "files_in_several_splits": len(files),
            "speakers_in_several_splits": len(speakers),
            "identical_audio_across_splits": len(identical),
        },
        "duplicate_audio": duplicates,
        "n_speakers": len(by_speaker),  # 0: the clips name no speakers, so speaker leakage was not checked
    }


def build_report(session: Session, ds: Dataset, unchanged: bool, seconds: float) -> IngestReport:
    """The report of data set ``ds`` as stored."""
    counts = split_counts(session, ds.id)
    splits, per_split = counts.clips, counts.speakers
    rejects = {r.reason: {"count": r.count, "examples": [{"path": e.path, "detail": e.detail} for e in r.examples]}
               for r in reject_summary(session, ds.id, EXAMPLES_PER_REASON)}
    list_stats = {k: v for k, v in (ds.list_stats or {}).items() if k not in ("fingerprint", "ingest_owner")}
    return IngestReport(
        dataset_id=ds.id, name=ds.name, root=ds.root, layout=ds.layout, split_source=ds.split_source,
        unchanged=unchanged, n_clips=sum(splits.values()), n_rejects=sum(r["count"] for r in rejects.values()),
        splits={s: splits.get(s, 0) for s in ("train", "validation", "test")}, labels=list(ds.labels or []),
        n_speakers=counts.n_speakers, speakers_per_split={s: per_split.get(s, 0) for s in ("train", "validation", "test")},
        rejects=rejects, list_stats=list_stats, leakage=dict(ds.leakage or {}),
        n_noise_files=len(ds.noise_files or []), n_cutoff_signal=counts.n_cutoff_signal, seconds=seconds,
        meta_columns=dict(ds.meta_columns or {}), speaker_leakage=ds.speaker_leakage or "not_checked",
        notes=list((ds.source or {}).get("notes") or []), command=str((ds.source or {}).get("command") or ""),
        **_quality_counts(session, ds.id),
    )


def _quality_counts(session: Session, dataset_id: int) -> dict:
    """How many clips each audio-quality finding flags (``ml.analysis.quality``), and how many lack the stats."""
    from ml.analysis.quality import flags_from_columns

    q = quality_arrays(session, dataset_id)
    flags = flags_from_columns(q["peak"], q["plateau_share"], q["dc"], q["band_step_db"])
    return {"quality": {k: int(v.sum()) for k, v in flags.items() if v.any()},
            "quality_unmeasured": int(np.isnan(q["plateau_share"]).sum())}


def reingest_command(ds: Dataset) -> str:
    """The ``earmark ingest`` command that reads data set ``ds`` again under its own name (what fills
    the stats of clips ingested before earmark measured them; clip ids, runs and flags stay)."""
    import shlex

    command = str((ds.source or {}).get("command") or "") or shlex.join(["earmark", "ingest", ds.root])
    return f"{command} --name {shlex.quote(ds.name)}"
