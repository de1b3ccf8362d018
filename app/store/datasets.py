"""Data sets: looking one up by what the user names, listing the ready ones, their class counts,
rejects and leakage report."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.limits import check_text, parse_id
from app.store.models import Clip, Dataset, Reject


@dataclass(frozen=True)
class RejectExample:
    """One rejected file and why."""

    path: str
    detail: str | None


@dataclass(frozen=True)
class RejectSummary:
    """How many files an ingest rejected for one reason, and the first few by path."""

    reason: str
    count: int
    examples: list[RejectExample]


def resolve_dataset(session: Session, ref: str | int | None) -> Dataset:
    """A ready data set by id or name; ``None`` means the only (or newest) one."""
    ready = select(Dataset).where(Dataset.status == "ready")
    if ref is None or ref == "latest":
        ds = session.scalars(ready.order_by(Dataset.id.desc())).first()
    elif (ds_id := parse_id(ref, "data set")) is not None:  # ASCII digits in 1..MAX_ID; '²' is a name
        ds = session.scalars(ready.where(Dataset.id == ds_id)).first()
    else:
        check_text(str(ref), "data set name")
        ds = session.scalars(ready.where(Dataset.name == str(ref))).first()
    if ds is None:
        names = session.scalars(select(Dataset.name).where(Dataset.status == "ready")).all()
        raise NotFound(
            f"no data set {ref!r}" if ref not in (None, "latest") else "no data set has been ingested yet",
            detail=f"known data sets: {', '.join(names) or 'none'}",
            hint="run `earmark ingest PATH --name NAME` first",
        )
    return ds


def get_dataset(session: Session, dataset_id: int) -> Dataset | None:
    """A data set by primary key (ready or not), or None."""
    return session.get(Dataset, dataset_id)


def ready_datasets(session: Session) -> list[Dataset]:
    """Ready data sets, newest first."""
    return list(session.scalars(select(Dataset).where(Dataset.status == "ready").order_by(Dataset.id.desc())))


def label_counts(session: Session, dataset_id: int) -> list[tuple[str, str, int]]:
    """(split, label, clip count) for every split and label of a data set."""
    rows = session.execute(select(Clip.split, Clip.label, func.count()).where(Clip.dataset_id == dataset_id)
                           .group_by(Clip.split, Clip.label)).all()
    return [(s, lab, int(n)) for s, lab, n in rows]


def rejects(session: Session, dataset_id: int, limit: int = 200) -> list[Reject]:
    """The first ``limit`` ingest rejects of a data set."""
    return list(session.scalars(select(Reject).where(Reject.dataset_id == dataset_id).order_by(Reject.id)
                                .limit(limit)))


def set_leakage_key(session: Session, dataset_id: int, values: dict) -> None:
    """Replace some keys of a data set's leakage report (e.g. what ``earmark analyze`` found). Caller commits."""
    ds = session.get(Dataset, dataset_id)
    if ds is None:
        return
    leakage = dict(ds.leakage or {})
    leakage.update(values)
    ds.leakage = leakage


def meta_columns(session: Session, dataset_id: int) -> dict[str, str]:
    """A data set's metadata columns in manifest order: {name: "number" | "text" | "boolean"}."""
    return dict(session.scalar(select(Dataset.meta_columns).where(Dataset.id == dataset_id)) or {})


def reject_summary(session: Session, dataset_id: int, examples: int) -> list[RejectSummary]:
    """Rejects per reason, most common first (then by reason), each with its first ``examples`` paths."""
    counts = session.execute(select(Reject.reason, func.count()).where(Reject.dataset_id == dataset_id)
                             .group_by(Reject.reason)).all()
    out = []
    for reason, n in sorted(counts, key=lambda rc: (-rc[1], rc[0])):
        rows = session.execute(select(Reject.path, Reject.detail).where(
            Reject.dataset_id == dataset_id, Reject.reason == reason).order_by(Reject.path).limit(examples)).all()
        out.append(RejectSummary(reason, n, [RejectExample(p, d) for p, d in rows]))
    return out


def dataset_named(session: Session, name: str) -> Dataset | None:
    """The data set called ``name``, in any status (an ingest claims names), or None."""
    return session.scalars(select(Dataset).where(Dataset.name == name)).first()


def add_dataset(session: Session, **fields) -> Dataset:
    """A new Dataset row with ``fields`` (name, root, layout, status, ...). Caller commits."""
    ds = Dataset(**fields)
    session.add(ds)
    return ds


def remove_dataset(session: Session, ds: Dataset) -> None:
    """Delete a data set with its rejects and clips (an unfinished ingest's leftovers); flushed, caller commits."""
    session.execute(delete(Reject).where(Reject.dataset_id == ds.id))
    session.execute(delete(Clip).where(Clip.dataset_id == ds.id))
    session.delete(ds)
    session.flush()


def delete_dataset_row(session: Session, dataset_id: int) -> None:
    """Delete the data set row alone (a new, still empty one). Caller commits."""
    session.execute(delete(Dataset).where(Dataset.id == dataset_id))


def update_dataset(session: Session, dataset_id: int, **values) -> None:
    """Set columns of a data set row (an ingest's results and its 'ready' status). Caller commits."""
    session.execute(update(Dataset).where(Dataset.id == dataset_id).values(**values))


def clear_rejects(session: Session, dataset_id: int) -> None:
    """Delete a data set's rejects (an ingest writes them again). Caller commits."""
    session.execute(delete(Reject).where(Reject.dataset_id == dataset_id))
