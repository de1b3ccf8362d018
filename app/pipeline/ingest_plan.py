"""What ``earmark ingest`` will read: the layout plan, its clip records, splits and fingerprint.

``plan_ingest`` wraps ``ml.layouts`` (plan_layout → load_plan): a Speech Commands folder, a
folder per class, split folders, a manifest (CSV/TSV, Parquet, JSON Lines), per-split manifests,
file names read by ``--name-pattern``, with a speaker table joined on. Every problem the ml layer
finds (``ManifestError``, ``LayoutError``) becomes an ``EarmarkError`` with its title, detail and
hint, before anything is written.

The Speech Commands layouts decode as they always have (16 kHz, at most 1 s, unless told
otherwise); the new layouts keep each file's native rate (8-48 kHz) and accept clips up to
``DEFAULT_MAX_SECONDS`` (``ml.audio.MAX_CLIP_SECONDS``, 30 s) unless told otherwise.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from app.errors import EarmarkError
from app.limits import check_text
from ml.audio import MAX_CLIP_SECONDS
from ml.layouts import LayoutPlan, SplitPlan, load_plan, plan_layout
from ml.manifests import ClipRecord, Manifest
from ml.speech_commands import LayoutError
from ml.tables import ManifestError

SPEECH_COMMANDS_KINDS = ("speech_commands", "test_archive", "split_folders", "folders")
SC_SAMPLE_RATE, SC_MAX_SECONDS = 16000, 1.0  # the Speech Commands layouts' defaults, as before issue 12
DEFAULT_MAX_SECONDS = MAX_CLIP_SECONDS  # the longest clip the other layouts accept by default (30 s)
_HASHED = ("speaker_hash", "file_hash", "mixed_hash")


@dataclass
class IngestOptions:
    """How to read a data set beyond its path (the CLI's ``--manifest``, ``--name-pattern`` ... options).

    ``columns`` maps a role (path, label, split, speaker) to a column name; an empty name
    ignores the column that would be picked up by its usual name.
    """

    manifest: str | Path | None = None
    name_pattern: str | None = None
    speaker_table: str | Path | None = None
    audio_dir: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The options given, as plain JSON values (for ``Dataset.source`` and the fingerprint)."""
        out: dict = {}
        for key in ("manifest", "name_pattern", "speaker_table", "audio_dir"):
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value)
        if self.columns:
            out["columns"] = {k: (v or None) for k, v in sorted(self.columns.items())}
        return out


@dataclass
class PlannedIngest:
    """A data set ready to decode: the plan, every clip record with its split, and how to decode."""

    plan: LayoutPlan
    manifest: Manifest
    split: SplitPlan
    sample_rate: int | None  # required rate; None: each file's native rate (8-48 kHz)
    max_seconds: float | None  # longest clip accepted; None: any length
    options: IngestOptions

    @property
    def split_source(self) -> str:
        """Where the splits came from, as stored (the Speech Commands layouts keep 'hash')."""
        if self.plan.kind in SPEECH_COMMANDS_KINDS and self.split.source in _HASHED:
            return "hash"  # Speech Commands' rule: by speaker when names give one, else by file name
        return self.split.source

    @property
    def native(self) -> bool:
        """True when files keep their own sample rate."""
        return self.sample_rate is None

    def source_info(self) -> dict:
        """What was ingested, for ``Dataset.source``: layout kind, files, options, notes and limits."""
        return {"kind": self.plan.kind, "manifests": {s: str(p) for s, p in self.plan.manifests.items()},
                "speaker_table": str(self.plan.speaker_table) if self.plan.speaker_table else None,
                "name_pattern": self.plan.name_pattern, "options": self.options.as_dict(),
                "notes": list(self.plan.notes) + list(self.manifest.notes),
                "sample_rate": self.sample_rate or "native", "max_seconds": self.max_seconds,
                "command": self.plan.command(), "split_source": self.split.source}


def manifest_error(exc: ManifestError | LayoutError, path: Path) -> EarmarkError:
    """The ml layer's problem as the app's ``EarmarkError`` (title, detail, hint), status 422."""
    if isinstance(exc, ManifestError):
        if exc.title.startswith("no audio files under"):
            return EarmarkError(f"no audio data set found in {path}", detail=f"{exc.title}; {exc.detail}",
                                hint=exc.hint, status=422)
        return EarmarkError(exc.title, detail=exc.detail, hint=exc.hint, status=422)
    return EarmarkError(f"no audio data set found in {path}", detail=str(exc),
                        hint="point at a folder with one sub-folder of audio files per class, a manifest "
                        "(--manifest FILE) or files named by a pattern (--name-pattern REGEX)", status=422)


def check_record_text(records: list[ClipRecord]) -> None:
    """Refuse (422, naming the row) a path, label, speaker or metadata text with a NUL or a lone surrogate:
    no database can store them. One pass over the joined text; rows are searched only on a hit."""
    def texts(r: ClipRecord) -> list[tuple[str, str]]:
        return [("path", r.path), ("label", r.label), ("speaker", r.speaker), *((f"column {k!r}", k) for k in r.meta),
                *((f"column {k!r}", v) for k, v in r.meta.items())]

    blob = "\x01".join(v for r in records for _, v in texts(r) if isinstance(v, str))
    if "\x00" not in blob and not any("\ud800" <= ch <= "\udfff" for ch in set(blob)):
        return
    for r in records:
        for what, value in texts(r):
            if isinstance(value, str):
                try:
                    check_text(value, what)
                except EarmarkError as exc:
                    raise EarmarkError(f"{r.where or r.path}: {exc.title}", detail=repr(value[:80]),
                                       hint="fix that row, or its file name", status=422) from None


def plan_ingest(path: Path, options: IngestOptions, sample_rate: int | None = None,
                max_seconds: float | None | str = "default") -> PlannedIngest:
    """Plan and read the clip records of ``path`` (a folder or a manifest file); nothing is decoded.

    ``sample_rate`` None: 16 kHz for the Speech Commands layouts, native for the others.
    ``max_seconds`` "default": 1 s for the Speech Commands layouts, ``DEFAULT_MAX_SECONDS`` for the others.
    """
    columns = {k: (v or None) for k, v in (options.columns or {}).items()}
    try:
        plan = plan_layout(path, manifest=options.manifest, name_pattern=options.name_pattern,
                           speaker_table=options.speaker_table, audio_dir=options.audio_dir)
        manifest, split = load_plan(plan, columns or None)
    except (ManifestError, LayoutError) as exc:
        raise manifest_error(exc, path) from None
    except OSError as exc:
        raise EarmarkError(f"cannot read {exc.filename or path}", detail=exc.strerror or str(exc),
                           hint="check the path and its permissions", status=422) from None
    sc_kind = plan.kind in SPEECH_COMMANDS_KINDS
    if max_seconds == "default":
        max_seconds = SC_MAX_SECONDS if sc_kind else DEFAULT_MAX_SECONDS
    if sample_rate is None and sc_kind:
        sample_rate = SC_SAMPLE_RATE
    if not manifest.records:
        raise EarmarkError(f"no clips to ingest in {path}", detail="; ".join(manifest.notes)[:500],
                           hint="check the manifest rows or the --name-pattern", status=422)
    check_record_text(manifest.records)
    return PlannedIngest(plan, manifest, split, sample_rate, max_seconds, options)  # type: ignore[arg-type]


# The code that decodes and measures each clip: when it changes (an upgrade of earmark), the stored
# per-clip stats are stale, so the next ingest of an unchanged folder measures every clip again.
_MEASURING_MODULES = ("ml.audio", "ml.analysis.signal", "ml.analysis.quality")


@functools.cache
def measurement_version() -> str:
    """A short hash of the source of the modules that decode and measure clips (``_MEASURING_MODULES``)."""
    h = hashlib.sha1()
    for name in _MEASURING_MODULES:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return h.hexdigest()[:12]


def fingerprint(p: PlannedIngest) -> str:
    """Identity of what ingest would read and how it measures it: every clip file, noise file, manifest
    and table (path, size, mtime), the options, the decoding limits, the clip records' labels, splits
    and speakers, and the measuring code's ``measurement_version``."""
    h = hashlib.sha1(f"v2|{p.plan.kind}|{p.sample_rate}|{p.max_seconds}|{sorted(p.options.as_dict().items())}"
                     f"|{measurement_version()}".encode())
    root = p.plan.root
    files = [root / r.path for r in p.manifest.records] + [root / n for n in p.plan.noise_files]
    files += list(p.plan.manifests.values()) + ([p.plan.speaker_table] if p.plan.speaker_table else [])
    files += [root / "validation_list.txt", root / "testing_list.txt"]
    for f in files:
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0-\n".encode())
    for r in p.manifest.records:
        h.update(f"{r.path}\0{r.label}\0{r.split}\0{r.speaker}\n".encode())
    return h.hexdigest()
