"""The data the pages and the JSON API share: one view, two formats (datasette's idea).

Each function returns plain data (dicts and lists); an HTML route passes it to a template, the
matching ``/api`` route returns it as JSON. Views read the store through ``app.store`` and the run
cache (``app.store.cache.RunCache``); they never run SQL themselves.
"""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.pipeline.ingest_report import reingest_command
from app.store import clips as clips_store
from app.store import findings as findings_store
from app.store import predictions, scores
from app.store.cache import RunCache, SliceColumns
from app.store.clip_stats import count_unmeasured_quality
from app.store.datasets import get_dataset
from app.store.filters import ClipFilter, filter_rows
from app.store.models import Clip, Dataset, Finding, Run
from app.store.runs import run_state
from app.web import media, urls
from ml.analysis import quality

SPEAKER_LIMIT = 40
N_NEIGHBOURS = 10


# ---- overview --------------------------------------------------------------------------------

def under_represented(counts: dict[str, int], ratio: float = 0.5) -> list[str]:
    """Labels with fewer than ``ratio`` x the median count of their split."""
    if not counts:
        return []
    median = float(np.median(list(counts.values())))
    return [label for label, n in counts.items() if n < ratio * median]


def dataset_summary(session: Session, cache: RunCache, ds: Dataset) -> dict:
    """What the overview shows about one data set (also ``/api/datasets``)."""
    dist = cache.class_distribution(session, ds)
    under = {split: under_represented(counts) for split, counts in dist.items()}
    return dict(
        id=ds.id, name=ds.name, layout=ds.layout, n_clips=ds.n_clips, n_rejects=ds.n_rejects,
        sample_rate=ds.sample_rate, labels=list(ds.labels or []), split_source=ds.split_source,
        list_stats=ds.list_stats or {}, distribution=dist, under_represented=under, leakage=dict(ds.leakage or {}),
        created_at=ds.created_at.isoformat() if ds.created_at else None,
    )


def run_summary(run: Run) -> dict:
    """A run's headline numbers: per-split accuracy and macro-F1 from ``Run.metrics``."""
    metrics = run.metrics or {}
    per_split = {s: dict(accuracy=m.get("accuracy"), macro_f1=m.get("macro_f1"))
                 for s, m in metrics.items() if isinstance(m, dict)}
    state = run_state(run)  # 'interrupted' when the process training or inferring it is gone
    return dict(id=run.id, name=run.name, dataset_id=run.dataset_id, model=run.model, status=state.status,
                resume=state.resume,
                classes=list(run.classes or []), n_params=run.n_params, epochs_done=run.epochs_done,
                parent_run_id=run.parent_run_id, n_flags_used=len(run.flags_used or []), error=run.error,
                created_at=run.created_at.isoformat() if run.created_at else None,
                finished_at=run.finished_at.isoformat() if run.finished_at else None, metrics=per_split,
                imported=import_note(run))


def import_note(run: Run) -> dict | None:
    """Where an imported run came from, its coverage and what it was imported without; None for a trained run."""
    info = (run.config or {}).get("import")
    if not isinstance(info, dict):
        return None
    cov = info.get("coverage") or {}
    clips, covered = int(cov.get("clips") or 0), int(cov.get("covered") or 0)
    source = info.get("source")
    return dict(source=source.rsplit("/", 1)[-1] if source else info.get("format") or "arrays",
                sha256=(info.get("sha256") or "")[:12], model=info.get("model"), version=info.get("model_version"),
                class_map=(info.get("class_map") or {}).get("task"), clips=clips, covered=covered,
                fraction=covered / clips if clips else 0.0, uncovered=int(cov.get("uncovered") or 0),
                uncovered_paths=list(cov.get("uncovered_paths") or [])[:5], missing=list(info.get("missing") or []),
                skipped=list(((run.config or {}).get("analysis_skipped") or {}).values()))


# ---- confusion -------------------------------------------------------------------------------

def default_split(run: Run) -> str:
    """The split a confusion matrix opens on: validation, else test, else train."""
    metrics = run.metrics or {}
    for split in ("validation", "test", "train"):
        if split in metrics:
            return split
    return "validation"


def confusion_data(session: Session, cache: RunCache, run: Run, split: str | None) -> dict:
    """Labels, counts and row-normalised rates of one split (also ``/api/confusion``)."""
    labels, cm = cache.frame(session, run).confusion(list(run.classes or []), split)
    totals = cm.sum(axis=1)
    rates = np.divide(cm, totals[:, None], out=np.zeros(cm.shape, dtype=float), where=totals[:, None] > 0)
    correct = int(np.trace(cm))
    return dict(run_id=run.id, split=split, labels=labels, counts=cm.tolist(), rates=rates.round(4).tolist(),
                row_totals=totals.tolist(), n=int(cm.sum()), accuracy=correct / max(1, int(cm.sum())))


# ---- the clip list and the clip page -----------------------------------------------------------

def clip_page(session: Session, cache: RunCache, run: Run, f: ClipFilter, page: int, per_page: int) -> dict:
    """One page of the filtered, sorted list: total, pages and the rows (also ``/api/clips``)."""
    if f.finding is not None:
        findings_store.get_finding(session, f.finding)
    frame = cache.frame(session, run)
    rows = filter_rows(session, frame, run.dataset_id, f, filter_columns(session, cache, run, f),
                       filter_quality(session, cache, run, f))
    total = len(rows)
    pages = max(1, math.ceil(total / per_page))
    page = min(page, pages)
    ids = [int(i) for i in frame.clip_ids[rows[(page - 1) * per_page: page * per_page]]]
    return dict(run_id=run.id, total=total, page=page, pages=pages, per_page=per_page,
                has_scores=frame.has_scores, items=clips_store.clip_rows(session, run, ids))


def filter_columns(session: Session, cache: RunCache, run: Run, f: ClipFilter) -> SliceColumns | None:
    """The run's slice columns when ``f`` has conditions on them (metadata, signal stats, speaker), else None."""
    return cache.slice_columns(session, run) if f.columns else None


def filter_quality(session: Session, cache: RunCache, run: Run, f: ClipFilter) -> dict[str, np.ndarray] | None:
    """The run's audio-quality flags (cached per data set version) when ``f`` filters by quality, else None."""
    return cache.quality_flags(session, run) if f.quality else None


def clips_by_id(session: Session, run: Run, clip_ids: list[int]) -> dict:
    """Exactly these clips, in this order, shaped like a page of the list."""
    items = clips_store.clip_rows(session, run, clip_ids)
    return dict(run_id=run.id, total=len(items), page=1, pages=1, per_page=len(items), items=items)


def clip_detail(session: Session, cache: RunCache, run: Run, clip: Clip) -> dict:
    """Everything the clip page shows about ``clip`` under ``run`` (also ``/api/clips/{id}``)."""
    if clip.dataset_id != run.dataset_id:
        raise NotFound(f"clip {clip.id} is not in the data set of run #{run.id}",
                       hint="pick a run of this clip's data set in the run selector")
    dataset = get_dataset(session, clip.dataset_id)
    pred = predictions.get_prediction(session, run.id, clip.id)
    score = scores.get_score(session, run.id, clip.id)
    neighbours = cache.nearest(session, run, clip.id, k=N_NEIGHBOURS)
    speaker_ids = clips_store.speaker_clip_ids(session, clip, SPEAKER_LIMIT)
    # one query (and one flag lookup) for the clip, its neighbours and the speaker's clips
    rows = {r["id"]: r for r in clips_store.clip_rows(session, run, [clip.id, *[c for c, _ in neighbours],
                                                                        *speaker_ids])}
    row = dict(rows[clip.id])
    row.update(
        dataset=dict(id=dataset.id, name=dataset.name), sample_rate=clip.sample_rate, n_samples=clip.n_samples,
        channels=clip.channels, utterance=clip.utterance, content_hash=clip.content_hash,
        signal=media.signal_stats(clip), top5=predictions.top_classes(pred, list(run.classes or [])),
        scores=None if score is None else dict(
            cutoff_score=score.cutoff_score, label_quality=score.label_quality, label_issue=score.label_issue,
            suggested_label=score.suggested_label, outlier_score=score.outlier_score, cluster=score.cluster,
            duplicate_of=score.duplicate_of),
        neighbors=[dict(rows[c], similarity=s) for c, s in neighbours if c in rows],
        speaker_clips=[rows[c] for c in speaker_ids if c in rows],
        spectrograms=spectrogram_views(clip.id, run),
        quality=clip_quality(clip, dataset, run.id),
        meta=typed_meta(clip.meta or {}, (dataset.meta_columns or {}) if dataset else {}, run.id),
        **urls.media(clip.id),
    )
    return row


def typed_meta(meta: dict, kinds: dict[str, str], run_id: int) -> list[dict]:
    """A clip's metadata as ``[{name, kind, value, clips_url}]`` in its data set's column order (extra
    keys last, as text); ``clips_url`` lists the run's clips with the same value (None without one)."""
    names = [n for n in kinds if n in meta] + [n for n in meta if n not in kinds]
    out = []
    for n in names:
        v = meta[n]
        key = None if v is None else ("true" if v else "false") if isinstance(v, bool) else str(v)
        out.append(dict(name=n, kind=kinds.get(n, "text"), value=v,
                        clips_url=None if key is None else urls.clip_list(run_id, **{f"meta.{n}": key})))
    return out


def spectrogram_views(clip_id: int, run: Run) -> list[dict]:
    """The spectrograms the clip page offers, each with its honest caption: the display one, and the
    run's own front end when its model has one (``app.web.media``)."""
    out = [dict(name="display", label=media.DISPLAY.label, url=urls.spectrogram(clip_id))]
    fe = media.model_front_end(run.config)
    if fe is not None:
        out.append(dict(name="model", label=fe.label, url=urls.spectrogram(clip_id, view="model", run_id=run.id)))
    return out


def position_in_list(session: Session, cache: RunCache, run: Run, f: ClipFilter, clip_id: int
                     ) -> tuple[int | None, int | None, int | None, int]:
    """(previous id, next id, position, total) of ``clip_id`` in the list filtered by ``f``."""
    frame = cache.frame(session, run)
    rows = filter_rows(session, frame, run.dataset_id, f, filter_columns(session, cache, run, f),
                       filter_quality(session, cache, run, f))
    me = frame.index_of(clip_id)
    hits = np.nonzero(rows == me)[0] if me is not None else []
    if not len(hits):
        return None, None, None, len(rows)
    pos = int(hits[0])
    prev_id = int(frame.clip_ids[rows[pos - 1]]) if pos > 0 else None
    next_id = int(frame.clip_ids[rows[pos + 1]]) if pos + 1 < len(rows) else None
    return prev_id, next_id, pos, len(rows)


# ---- audio quality ---------------------------------------------------------------------------

def clip_quality(clip: Clip, dataset: Dataset | None, run_id: int) -> dict:
    """What the clip page says of a clip's audio quality: the defects its stored stats raise (each with
    its clip list), whether clipping, DC offset and band limits were measured, and the command that
    measures them when they were not (``ml.analysis.quality`` decides)."""
    found = quality.defects_of(clip.peak, clip.plateau_share, clip.dc_offset, clip.band_step_db)
    measured = clip.plateau_share is not None
    return dict(defects=[dict(kind=k, label=quality.WORDS[k].label, clips_url=urls.clip_list(run_id, quality=k))
                         for k in found],
                measured=measured, peak_dbfs=float(quality.peak_to_dbfs(clip.peak)),
                band_measurable=clip.sample_rate >= 2 * quality.BAND_ABOVE_HZ[1],
                limits=dict(plateau_pct=100 * quality.CLIPPED_MIN_SHARE, dc=quality.DC_MAX,
                            band_db=quality.UPSAMPLED_STEP_DB, quiet_dbfs=quality.QUIET_PEAK_DBFS),
                command=None if measured or dataset is None else reingest_command(dataset))


def quality_note(session: Session, dataset: Dataset) -> dict | None:
    """``{unmeasured, command}`` when some clips of ``dataset`` lack the audio-quality stats (ingested
    before earmark measured them), so a page can say which findings leave them out and what fills them."""
    n = count_unmeasured_quality(session, dataset.id)
    return dict(unmeasured=n, n_clips=dataset.n_clips, command=reingest_command(dataset)) if n else None


def quality_options() -> list[dict]:
    """The clip list's audio-quality menu: ``[{value, label, rule}]`` in ``FINDINGS`` order."""
    return [dict(value=k, label=quality.WORDS[k].label, rule=quality.WORDS[k].rule) for k in quality.FINDINGS]


# ---- findings --------------------------------------------------------------------------------

def finding_dict(f: Finding) -> dict:
    """A finding as the API returns it, with the URLs of its clip list and cloud view."""
    return dict(id=f.id, run_id=f.run_id, kind=f.kind, rank=f.rank, score=round(float(f.score), 4),
                title=f.title, description=f.description, reason=f.reason, suggested_label=f.suggested_label,
                n_clips=f.n_clips, stats=f.stats or {},
                clips_url=urls.finding_clips(f.run_id, f.id), cloud_url=urls.cloud_page(f.run_id, f.id))
