"""Runs: looking one up by what the user names, listing them, and the run selector's choices."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.store.models import Dataset, Epoch, Run


@dataclass
class RunSummary:
    """One line of ``earmark runs``: what a run is and how it scored per split."""

    id: int
    name: str
    dataset: str
    model: str
    status: str
    epochs: int
    planned_epochs: int | None
    classes: int
    folds: int
    parent: int | None
    error: str | None
    metrics: dict[str, dict[str, float | None]]  # split -> {accuracy, macro_f1}


@dataclass
class RunChoice:
    """One entry of the run selector."""

    id: int
    name: str
    status: str
    dataset: str


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


def newest_complete_run(session: Session) -> Run | None:
    """The run pages show when the URL names none: the newest complete one (else the newest)."""
    run = session.scalars(select(Run).where(Run.status == "complete").order_by(Run.id.desc())).first()
    return run or session.scalars(select(Run).order_by(Run.id.desc())).first()


def default_parent(session: Session, dataset_id: int) -> int | None:
    """The newest complete run of a data set (what a retrain compares against), or None."""
    return session.scalars(select(Run.id).where(Run.dataset_id == dataset_id, Run.status == "complete")
                           .order_by(Run.id.desc())).first()


def runs_of(session: Session, dataset_id: int | None = None) -> list[Run]:
    """Runs, newest first (optionally of one data set)."""
    q = select(Run).order_by(Run.id.desc())
    if dataset_id is not None:
        q = q.where(Run.dataset_id == dataset_id)
    return list(session.scalars(q))


def run_choices(session: Session, limit: int = 200) -> list[RunChoice]:
    """Runs for the selector, newest first: id, name, status and data set name."""
    rows = session.execute(
        select(Run.id, Run.name, Run.status, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id)
        .order_by(Run.id.desc()).limit(limit)
    ).all()
    return [RunChoice(i, n, s, d) for i, n, s, d in rows]


def list_runs(session: Session) -> list[RunSummary]:
    """Every run, oldest first, with what `earmark runs` shows."""
    rows = session.execute(select(Run, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id)
                           .order_by(Run.id)).all()
    return [RunSummary(
        id=run.id, name=run.name, dataset=ds_name, model=run.model, status=run.status, epochs=run.epochs_done,
        planned_epochs=(run.config or {}).get("epochs"), classes=len(run.classes or []), folds=run.folds,
        parent=run.parent_run_id, error=run.error,
        metrics={k: {"accuracy": v.get("accuracy"), "macro_f1": v.get("macro_f1")}
                 for k, v in (run.metrics or {}).items()},
    ) for run, ds_name in rows]


def get_run(session: Session, run_id: int) -> Run | None:
    """A run by primary key, or None."""
    return session.get(Run, run_id)


def set_run_status(session: Session, run_id: int, status: str, error: str | None = None) -> None:
    """Set a run's status (and error, cleared when None). Caller commits."""
    run = session.get(Run, run_id)
    if run is not None:
        run.status, run.error = status, error


def record_epoch(session: Session, run_id: int, epoch: int, **curves: float) -> None:
    """Store (or replace) one epoch's curves and count it done on the run. Caller commits."""
    session.execute(delete(Epoch).where(Epoch.run_id == run_id, Epoch.epoch == epoch))
    session.add(Epoch(run_id=run_id, epoch=epoch, **curves))
    run = session.get(Run, run_id)
    if run is not None:
        run.epochs_done = epoch


def complete_run_choices(session: Session, limit: int = 500) -> list[dict]:
    """Complete runs for the compare pickers, newest first: id, name, parent run and data set name."""
    rows = session.execute(
        select(Run.id, Run.name, Run.parent_run_id, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id)
        .where(Run.status == "complete").order_by(Run.id.desc()).limit(limit)
    ).all()
    return [dict(id=i, name=n, parent_run_id=p, dataset=d) for i, n, p, d in rows]


def add_run(session: Session, **fields) -> Run:
    """A new Run row with ``fields`` (dataset_id, name, model, status, classes, config, ...), flushed so it
    has an id. Caller commits: an import adds the run and its predictions in one transaction."""
    run = Run(**fields)
    session.add(run)
    session.flush()
    return run


def update_run_config(session: Session, run_id: int, values: dict) -> None:
    """Replace some keys of a run's ``config`` (e.g. which analysis parts were skipped). Caller commits."""
    run = session.get(Run, run_id)
    if run is not None:
        run.config = {**(run.config or {}), **values}
