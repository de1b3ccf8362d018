"""Resolving what the user names (a data set, a run) into rows, with errors that say what exists."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store.models import Dataset, Run


def resolve_dataset(session: Session, ref: str | int | None) -> Dataset:
    """A ready data set by id or name; ``None`` means the only (or newest) one."""
    ready = select(Dataset).where(Dataset.status == "ready")
    if ref is None or ref == "latest":
        ds = session.scalars(ready.order_by(Dataset.id.desc())).first()
    elif isinstance(ref, int) or str(ref).isdigit():
        ds = session.scalars(ready.where(Dataset.id == int(ref))).first()
    else:
        ds = session.scalars(ready.where(Dataset.name == str(ref))).first()
    if ds is None:
        names = session.scalars(select(Dataset.name).where(Dataset.status == "ready")).all()
        raise NotFound(
            f"no data set {ref!r}" if ref not in (None, "latest") else "no data set has been ingested yet",
            detail=f"known data sets: {', '.join(names) or 'none'}",
            hint="run `earmark ingest PATH --name NAME` first",
        )
    return ds


def resolve_run(session: Session, ref: str | int | None) -> Run:
    """A run by id, by name (the newest of that name), or ``latest``/``None`` for the newest run."""
    q = select(Run)
    if ref is None or ref == "latest":
        run = session.scalars(q.order_by(Run.id.desc())).first()
    elif isinstance(ref, int) or str(ref).isdigit():
        run = session.get(Run, int(ref))
    else:
        run = session.scalars(q.where(Run.name == str(ref)).order_by(Run.id.desc())).first()
    if run is None:
        known = session.execute(select(Run.id, Run.name).order_by(Run.id)).all()
        raise NotFound(
            f"no run {ref!r}" if ref not in (None, "latest") else "there are no runs yet",
            detail="known runs: " + (", ".join(f"{i} ({n})" for i, n in known) or "none"),
            hint="train one with `earmark train --dataset NAME`; list them with `earmark runs`",
        )
    return run
