"""Runs: looking one up by what the user names, listing them, the run selector's choices, and who owns a run.

A run that is 'training' or 'inferring' belongs to one process (``claim_run``), which writes a
heartbeat (``beat_run``); ``run_state`` reads a run whose process is gone as ``interrupted``, with the
command that resumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.limits import check_text, parse_id
from app.process import STALE_AFTER_S, current_owner, owner_alive
from app.store.models import Dataset, Epoch, Run, utcnow


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
    resume: str | None = None  # the command that picks an interrupted run up again


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
    elif (run_id := parse_id(ref, "run")) is not None:  # ASCII digits in 1..MAX_ID; '²' is a name
        run = session.get(Run, run_id)
    else:
        check_text(str(ref), "run name")
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
        select(Run, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id).order_by(Run.id.desc()).limit(limit)
    ).all()
    return [RunChoice(run.id, run.name, run_state(run).status, d) for run, d in rows]


def list_runs(session: Session) -> list[RunSummary]:
    """Every run, oldest first, with what `earmark runs` shows."""
    rows = session.execute(select(Run, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id)
                           .order_by(Run.id)).all()
    return [RunSummary(
        id=run.id, name=run.name, dataset=ds_name, model=run.model, status=run_state(run).status,
        resume=run_state(run).resume, epochs=run.epochs_done,
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


def finish_run(session: Session, run_id: int, status: str, **fields) -> None:
    """Set a run's ``status``, its ``finished_at`` to now and ``fields`` (checkpoint, metrics, n_params,
    embedding_dim, epochs_done...) when training or inference ends. Caller commits."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} is gone", hint="it was deleted while it ran; see `earmark runs`")
    run.status, run.finished_at = status, utcnow()
    for name, value in fields.items():
        setattr(run, name, value)


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


RUNNING = ("training", "inferring")


@dataclass(frozen=True)
class RunState:
    """How a run reads now: its status, or ``interrupted`` when the process working on it is gone."""

    status: str  # the stored status, or "interrupted"
    resume: str | None  # the command that picks an interrupted run up again, else None


def run_state(run: Run, now: datetime | None = None) -> RunState:
    """The run's status as pages and ``earmark runs`` show it (see ``app.process`` for liveness)."""
    if run.status not in RUNNING or owner_alive(run.owner, run.heartbeat_at, now):
        return RunState(run.status, None)
    if run.owner is None and run.created_at is not None:  # inserted, not yet claimed: give it a moment
        created = run.created_at if run.created_at.tzinfo else run.created_at.replace(tzinfo=UTC)
        if ((now or datetime.now(UTC)) - created).total_seconds() < STALE_AFTER_S:
            return RunState(run.status, None)
    resume = f"earmark train --resume {run.id}" if run.status == "training" else f"earmark infer --run {run.id}"
    return RunState("interrupted", resume)


def claim_run(session: Session, run: Run, status: str) -> None:
    """Make this process the owner of ``run`` and set its ``status`` ('training' or 'inferring'); commits.

    Refused (``Conflict``) while another live process owns it, or when another process claimed
    it since ``run`` was read (compare-and-set on ``Run.claim``), so two resumes never both run.
    """
    if run.status in RUNNING and owner_alive(run.owner, run.heartbeat_at):
        owner = run.owner or {}
        raise Conflict(f"run {run.id} is {run.status} right now (process {owner.get('pid')} on {owner.get('host')})",
                       hint="wait for it to finish, or stop that process; `earmark runs` shows the run as "
                            "interrupted once it is gone, and how to resume it")
    won = session.execute(
        update(Run).where(Run.id == run.id, Run.claim == run.claim)
        .values(owner=current_owner(), heartbeat_at=datetime.now(UTC), claim=Run.claim + 1, status=status, error=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    session.commit()
    if won != 1:
        raise Conflict(f"run {run.id} was just taken by another process", hint="see `earmark runs`")
    session.refresh(run)


def beat_run(session: Session, run_id: int) -> None:
    """Record that the run's process is alive (its heartbeat); commits."""
    session.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=datetime.now(UTC))
                    .execution_options(synchronize_session=False))
    session.commit()
