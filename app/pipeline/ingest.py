"""``earmark ingest``: a data set folder in, datasets/clips/rejects rows out.

Flow: ``app.pipeline.ingest_plan.plan_ingest`` (``ml.layouts``) lists the clips, their labels,
splits, speakers and metadata, from any layout it reads (Speech Commands folders, manifests,
per-split manifests, ``--name-pattern``); a process pool decodes each file (``ml.audio.decode``
at 16 kHz for the Speech Commands layouts, ``ml.audio.decode_native`` at the file's own rate for
the others), hashes its int16 samples and computes ``ml.analysis.signal`` and ``ml.analysis.quality``
stats on the same samples; then the rows go in with bulk inserts in ONE short transaction, which
also flips the data set to 'ready'.

Visibility: a new data set's row is committed first with status 'ingesting' (readers only see
'ready'), so a killed ingest leaves at most that row, which the next ingest of the same name
removes. Re-ingesting an unchanged folder (same files, sizes, mtimes and options) keeps the data
set and its clip ids, so runs stay valid; a changed folder is merged by path in one transaction.
So is an unchanged one whose clips lack the audio-quality stats (ingested before migration 0006):
ingesting the same folder again fills them and keeps every clip id.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from sqlalchemy.orm import Session

from app.errors import Conflict, EarmarkError
from app.limits import check_text
from app.pipeline.common import Progress, no_progress
from app.pipeline.ingest_plan import (
    IngestOptions,
    PlannedIngest,
    fingerprint,
    measurement_version,
    plan_ingest,
)
from app.pipeline.ingest_report import IngestReport, build_report, leakage_report
from app.process import current_owner, owner_alive
from app.store.clip_stats import count_unmeasured_quality
from app.store.clips import clip_ids_by_path, delete_clips, distinct_labels, leakage_rows, update_clips
from app.store.datasets import (
    add_dataset,
    clear_rejects,
    dataset_named,
    delete_dataset_row,
    get_dataset,
    remove_dataset,
    update_dataset,
)
from app.store.db import Store
from app.store.models import Clip, Dataset, Reject
from app.store.writes import bulk_insert
from ml.analysis.quality import quality_stats
from ml.analysis.signal import signal_stats
from ml.audio import AudioError, decode, decode_native

log = logging.getLogger(__name__)

# progress(stage, done, total); stage is "scanning", "decoding", "writing" or "finishing".

CHUNK = 512  # files per pool task: large enough that IPC is negligible
INLINE_BELOW = 400  # decode in-process below this many files (a pool costs more than it saves)
# The Clip columns _measure fills after the decode facts: ml.analysis.signal's stats, then the
# audio-quality stats of ml.analysis.quality (the peak is signal's; quality's dc is stored as dc_offset).
STAT_FIELDS = ("duration_s", "rms_dbfs", "peak", "clipped_frac", "lead_silence_ms", "trail_silence_ms",
               "end_energy_db", "cutoff_signal", "plateau_share", "dc_offset", "band_step_db")

__all__ = ["IngestOptions", "IngestReport", "ingest"]

_worker_cfg: dict = {}


def _init_worker(root: str, sample_rate: int | None, max_samples: int | None, max_seconds: float | None) -> None:
    _worker_cfg.update(root=root, sample_rate=sample_rate, max_samples=max_samples, max_seconds=max_seconds)


def _decode_one(path: str, sr: int | None, max_samples: int | None, max_seconds: float | None):
    """A file at the required rate ``sr``, or at its own rate (8-48 kHz) when ``sr`` is None."""
    if sr is None:
        return decode_native(path, max_seconds=max_seconds)
    return decode(path, sample_rate=sr, max_samples=max_samples)


def _measure(root: str, rel: str, sr: int | None, max_samples: int | None, max_seconds: float | None) -> tuple:
    """('ok', path, values) or ('reject', path, reason, detail) for one file."""
    try:
        d = _decode_one(os.path.join(root, rel), sr, max_samples, max_seconds)
        x = d.as_float()
        st = signal_stats(x, d.sample_rate)
        qs = quality_stats(x, d.sample_rate)
        content_hash = hashlib.sha1(d.samples.tobytes()).hexdigest()
    except AudioError as exc:
        return ("reject", rel, exc.reason, exc.detail)
    except Exception as exc:  # noqa: BLE001 - a bad file must never stop an ingest
        return ("reject", rel, "unreadable", f"{type(exc).__name__}: {exc}"[:300])
    return ("ok", rel, (d.sample_rate, d.n_samples, d.channels, content_hash,
                        st.duration_s, st.rms_dbfs, st.peak, st.clipped_frac, st.lead_silence_ms,
                        st.trail_silence_ms, st.end_energy_db, st.cutoff_signal,
                        qs.plateau_share, qs.dc, qs.band_step_db))


def _process_chunk(paths: list[str]) -> list[tuple]:
    """Decode and measure a list of files (runs in a pool worker or in-process)."""
    cfg = _worker_cfg
    return [_measure(cfg["root"], rel, cfg["sample_rate"], cfg["max_samples"], cfg["max_seconds"]) for rel in paths]


def _isolate(chunk: list[str], ctx, initargs: tuple) -> list[tuple]:
    """Re-run a chunk whose worker died, one file per process, so the file that kills it is found."""
    out = []
    for rel in chunk:
        try:
            with ProcessPoolExecutor(1, mp_context=ctx, initializer=_init_worker, initargs=initargs) as ex:
                out += ex.submit(_process_chunk, [rel]).result()
        except BrokenProcessPool:
            log.warning("%s crashed the audio decoder; rejected", rel)
            out.append(("reject", rel, "unreadable", "the file crashed the audio decoder"))
    return out


def _decode_all(root: Path, paths: list[str], sample_rate: int | None, max_samples: int | None,
                max_seconds: float | None, workers: int | None) -> Iterator[list[tuple]]:
    """Yield result chunks in input order, decoding in a process pool for large sets.

    A worker that dies (a decoder crash, the OOM killer) does not stop the ingest: its chunk is
    re-run one file per process, and the rest goes on in a fresh pool.
    """
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    # Large chunks keep IPC negligible; smaller ones for small sets keep every worker busy.
    size = max(16, min(CHUNK, len(paths) // (max(1, n_workers) * 8) or 1))
    chunks = [paths[i:i + size] for i in range(0, len(paths), size)]
    initargs = (str(root), sample_rate, max_samples, max_seconds)
    if len(paths) < INLINE_BELOW or n_workers <= 1:
        _init_worker(*initargs)
        for chunk in chunks:
            yield _process_chunk(chunk)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    i = 0
    while i < len(chunks):
        ex = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_init_worker, initargs=initargs)
        finished = False
        try:
            for result in ex.map(_process_chunk, chunks[i:]):
                yield result
                i += 1
            finished = True
        except BrokenProcessPool:
            log.warning("a decoding process died; re-running its %d files one by one", len(chunks[i]))
            yield _isolate(chunks[i], ctx, initargs)
            i += 1
        finally:
            # On success wait for the workers to exit; on any failure do not decode the rest.
            ex.shutdown(wait=finished, cancel_futures=not finished)


def _claim(session: Session, name: str, root: Path, planned: PlannedIngest, fingerprint: str) -> tuple[Dataset, bool]:
    """The data set row to fill and whether it is new. Cleans up a stale 'ingesting' row."""
    ds = dataset_named(session, name)
    if ds is not None and ds.status != "ready":
        owner = (ds.list_stats or {}).get("ingest_owner") or {}
        if owner_alive(owner):
            raise Conflict(f"data set {name!r} is being ingested right now (process {owner['pid']})",
                           hint="wait for that ingest to finish, or ingest under another --name")
        log.info("removing the unfinished data set %r (id %s) left by an interrupted ingest", name, ds.id)
        remove_dataset(session, ds)
        ds = None
    if ds is not None:
        if ds.root != str(root):
            raise Conflict(f"a data set named {name!r} already exists for another folder",
                           detail=f"it was ingested from {ds.root}",
                           hint="pick another name with --name, or ingest that folder again")
        return ds, False
    ds = add_dataset(session, name=name, root=str(root), layout=planned.plan.kind, status="ingesting",
                     split_source=planned.split_source,
                     list_stats={"ingest_owner": current_owner(), "fingerprint": fingerprint})
    session.commit()  # reserve the name; readers ignore it until 'ready'
    return ds, True


def ingest(store: Store, path: str | Path, name: str | None = None, progress: Progress | None = None, *,
           sample_rate: int | None = None, max_seconds: float | None | str = "default", workers: int | None = None,
           options: IngestOptions | None = None) -> IngestReport:
    """Ingest the data set at ``path`` (a folder or a manifest file) under ``name`` (default: the folder's name).

    ``options`` say how to read it beyond the path (``--manifest``, ``--name-pattern``, column
    mapping, ``--speaker-table``, ``--audio-dir``); see ``app.pipeline.ingest_plan``. The Speech
    Commands layouts require ``sample_rate`` (default 16000) and at most ``max_seconds`` (default 1 s);
    the other layouts keep each file's rate (8-48 kHz; ``sample_rate`` requires one) and take clips up
    to ``max_seconds`` (default ``DEFAULT_MAX_SECONDS``, 30 s; None: any length). Files that break these
    rules, are not mono, unreadable, empty or not audio are rejected with their reason; they never
    stop the ingest. ``workers`` decoding processes (default: one per core).
    """
    t0 = time.perf_counter()
    given = Path(path).expanduser()
    if not given.exists():
        raise EarmarkError(f"no such folder: {given}", hint="check the path; to fetch the real data set run "
                           "`earmark download speech-commands`, or build a demo one with `earmark synth OUT`")
    given = given.resolve()
    if (sample_rate is not None and sample_rate <= 0) or (isinstance(max_seconds, int | float) and max_seconds <= 0):
        raise EarmarkError("the sample rate and the longest clip must be positive",
                           detail=f"sample rate {sample_rate}, max seconds {max_seconds}", status=422)
    options = options or IngestOptions()
    report = progress or no_progress
    report("scanning", 0, 1)
    try:
        planned = plan_ingest(given, options, sample_rate, max_seconds)
    except EarmarkError as exc:
        inner = _nested_dataset(given) if given.is_dir() else None
        if inner is not None:
            exc.hint = f"did you mean {inner}? (run `earmark ingest {inner}`)"
        raise
    root = planned.plan.root.resolve()
    name = _check_name((name or (given if given.is_dir() else given.parent).name).strip())
    sr, max_s = planned.sample_rate, planned.max_seconds
    max_samples = None if max_s is None or sr is None else int(round(max_s * sr))
    fp = fingerprint(planned)
    report("scanning", 1, 1)

    with store.session() as session:
        ds, is_new = _claim(session, name, root, planned, fp)
        if not is_new and (ds.list_stats or {}).get("fingerprint") == fp:
            # clips ingested before the audio-quality stats existed (migration 0006) are measured again,
            # merged by path like a changed folder: same clip ids, so runs and flags stay valid
            unmeasured = count_unmeasured_quality(session, ds.id)
            if not unmeasured:
                log.info("data set %r is unchanged since its last ingest; keeping it", name)
                return build_report(session, ds, unchanged=True, seconds=time.perf_counter() - t0)
            log.info("data set %r is unchanged, but %d clips lack the audio-quality stats: measuring them",
                     name, unmeasured)
        elif not is_new and (ds.list_stats or {}).get("measured_by") not in (None, measurement_version()):
            log.info("data set %r was measured by an older earmark: measuring every clip again (clip ids, "
                     "runs and flags stay)", name)
        dataset_id = ds.id
        existing = {} if is_new else clip_ids_by_path(session, dataset_id)
        session.commit()  # end the read transaction: no snapshot held open while decoding
        try:
            n_clips, n_rejects, rates = _write_clips(session, planned, dataset_id, existing, max_samples,
                                                     workers, report)
            noise_ok, noise_bad = _check_noise(planned)
            # entries the folder walk or the name pattern refused (links out of the root, pipes, bad
            # names, names the pattern does not match): see ml.files and ml.name_patterns
            listed_bad = [{"path": p, "reason": r, "detail": d} for p, r, d in planned.manifest.rejects]
            bulk_insert(session, Reject, [{"dataset_id": dataset_id, **r} for r in noise_bad + listed_bad])
            n_rejects += len(noise_bad) + len(listed_bad)
        except BaseException:
            session.rollback()
            if is_new:
                _drop(session, dataset_id)
            raise
        if n_clips == 0:
            session.rollback()
            if is_new:
                _drop(session, dataset_id)
            rate = f"sample rate {sr} Hz" if sr else "8-48 kHz"
            raise EarmarkError(f"none of the {len(planned.manifest.records)} audio files in {root} could be used",
                               detail=f"all {n_rejects} were rejected ({rate}, mono, at most {max_s} s expected)",
                               hint="check the files, or pass --sample-rate / --max-seconds to match them")
        report("finishing", 0, 1)
        rows = leakage_rows(session, dataset_id)
        list_stats = planned.manifest.list_stats
        stats = {k: v for k, v in list_stats.items()}
        stats["fingerprint"] = fp
        stats["measured_by"] = measurement_version()
        labels = distinct_labels(session, dataset_id)
        leakage = leakage_report(rows, list_stats.get("in_both_lists", []))
        leakage["speaker_leakage"] = planned.split.speaker_leakage
        source = planned.source_info()
        source["sample_rates"] = {str(k): v for k, v in sorted(rates.items())}
        update_dataset(
            session, dataset_id, status="ready", layout=planned.plan.kind, split_source=planned.split_source, n_clips=n_clips,
            n_rejects=n_rejects, sample_rate=sr or max(rates, key=lambda r: (rates[r], r)), labels=labels,
            list_stats=stats, leakage=leakage, noise_files=noise_ok, meta_columns=dict(planned.manifest.meta_types),
            speaker_leakage=planned.split.speaker_leakage, source=source)
        session.commit()
        report("finishing", 1, 1)
        session.expire_all()
        ds = get_dataset(session, dataset_id)
        out = build_report(session, ds, unchanged=False, seconds=time.perf_counter() - t0)
        log.info("ingested %s: %d clips, %d rejects in %.1f s", name, n_clips, n_rejects, out.seconds)
        return out


def _nested_dataset(root: Path) -> Path | None:
    """A sub-folder of ``root`` that looks like a Speech Commands data set (a common wrong PATH)."""
    try:
        subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    except OSError:
        return None
    for d in subs:
        if any((d / marker).exists() for marker in ("validation_list.txt", "testing_list.txt", "_background_noise_",
                                                       "_unknown_")):
            return d
    return None


def _check_name(name: str) -> str:
    """A data set name users can type back: not empty, not a number or 'latest', no control characters."""
    if not name:
        raise EarmarkError("the data set name is empty", hint="pass --name NAME", status=422)
    check_text(name, "data set name", 200)  # no NUL, no lone surrogate (a non-UTF-8 folder name)
    if len(name) > 200 or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise EarmarkError("the data set name is too long or holds control characters", detail=repr(name[:80]),
                           hint="pass a short --name NAME", status=422)
    if name.isdigit() or name == "latest":
        raise EarmarkError(f"{name!r} cannot be a data set name: it would read as an id or as 'latest'",
                           hint="pass another --name NAME", status=422)
    return name


def _drop(session: Session, dataset_id: int) -> None:
    """Remove an unfinished data set row (best effort: the next ingest also cleans it up)."""
    try:
        delete_dataset_row(session, dataset_id)
        session.commit()
    except Exception:  # noqa: BLE001 - the original error matters more than this cleanup
        log.warning("could not remove the unfinished data set %s; the next ingest will", dataset_id, exc_info=True)
        session.rollback()


def _check_noise(planned: PlannedIngest) -> tuple[list[str], list[dict]]:
    """Background-noise files the trainer can use, and rejects for the others (any length is fine)."""
    ok, bad = [], []
    root = planned.plan.root
    for rel in planned.plan.noise_files:
        try:
            _decode_one(str(root / rel), planned.sample_rate, None, None)
            ok.append(rel)
        except AudioError as exc:
            bad.append({"path": rel, "reason": exc.reason, "detail": exc.detail})
    return ok, bad


def _write_clips(session: Session, planned: PlannedIngest, dataset_id: int, existing: dict[str, int],
                 max_samples: int | None, workers: int | None,
                 report: Progress) -> tuple[int, int, dict[int, int]]:
    """Decode every record, then write clips and rejects (not committed).

    Returns (clips, rejects, {sample rate: clips}).

    Decoding happens before the first write, so the write transaction (which on SQLite holds the
    one write lock) lasts seconds, not the whole ingest: other writers (a training run, someone
    flagging clips) are not kept waiting past their busy timeout.
    """
    records = planned.manifest.records
    entries = {r.path: r for r in records}
    paths = [r.path for r in records]
    total = len(paths)
    report("decoding", 0, total)
    results: list[list[tuple]] = []
    done = 0
    for chunk in _decode_all(planned.plan.root, paths, planned.sample_rate, max_samples, planned.max_seconds,
                             workers):
        results.append(chunk)
        done += len(chunk)
        report("decoding", done, total)

    report("writing", 0, total)
    clear_rejects(session, dataset_id)
    seen: set[str] = set()
    n_clips = n_rejects = done = 0
    rates: dict[int, int] = {}
    for chunk in results:
        inserts, updates, rejects = [], [], []
        for res in chunk:
            if res[0] == "reject":
                rejects.append({"dataset_id": dataset_id, "path": res[1], "reason": res[2], "detail": res[3]})
                continue
            e = entries[res[1]]
            v = res[2]
            row = {"dataset_id": dataset_id, "path": e.path, "label": e.label, "word": e.word or e.label,
                   "split": e.split, "speaker": e.speaker, "utterance": e.utterance, "sample_rate": v[0],
                   "n_samples": v[1], "channels": v[2], "content_hash": v[3], "meta": e.meta or None,
                   **dict(zip(STAT_FIELDS, v[4:], strict=True))}
            rates[v[0]] = rates.get(v[0], 0) + 1
            seen.add(e.path)
            if e.path in existing:
                row["id"] = existing[e.path]
                updates.append(row)
            else:
                inserts.append(row)
        bulk_insert(session, Clip, inserts)
        update_clips(session, updates)  # ORM bulk UPDATE by primary key
        bulk_insert(session, Reject, rejects)
        n_clips += len(inserts) + len(updates)
        n_rejects += len(rejects)
        done += len(chunk)
        report("writing", done, total)
    gone = [cid for p, cid in existing.items() if p not in seen]
    delete_clips(session, gone)
    if gone:
        log.info("removed %d clips that are no longer in the folder (or are now rejected)", len(gone))
    return n_clips, n_rejects, rates
