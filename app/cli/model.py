"""Model commands: ``earmark train``, ``earmark infer --run R`` and ``earmark runs``."""

from __future__ import annotations

import typer
from rich.progress import (
    Progress,
)

from app.cli import app
from app.cli.common import console, progress_bar, store, user_errors

_STAGE_TEXT = {"decoding": "decoding waveforms (once, then cached)", "training": "training",
               "inferring": "inference + embeddings", "writing": "writing predictions"}


def _progress(bar: Progress):
    """A pipeline progress callback showing one bar per stage."""
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(_STAGE_TEXT.get(stage, stage), total=total or None)
        bar.update(tasks[stage], completed=done, total=total or None)

    return on_progress


@app.command()
def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set id or name. Default: the newest one."),
    name: str = typer.Option(None, "--name", "-n", help="Run name. Default: <data set>-<model>."),
    model: str = typer.Option("melcnn", help="melcnn (log-mel residual CNN) or m5 (raw-waveform baseline). "
                              "Default melcnn."),
    classes: str = typer.Option("all", help="all = the data set's labels; v1-12 = 10 keywords + _unknown_ + "
                                "_silence_. Default all."),
    epochs: int = typer.Option(25, help="Training epochs. Default 25."),
    batch_size: int = typer.Option(64, help="Clips per step (per process under torchrun); 512-1024 keeps a "
                                   "GPU busy. Default 64."),
    lr: float = typer.Option(3e-3, help="Peak learning rate (AdamW). Default 0.003."),
    schedule: str = typer.Option("onecycle", help="onecycle or cosine. Default onecycle."),
    label_smoothing: float = typer.Option(0.1, help="Cross-entropy label smoothing. Default 0.1."),
    speed_perturb: float = typer.Option(0.15, help="Random speed/pitch change of up to +-this fraction (on the "
                                        "device). Default 0.15; 0 turns it off."),
    width: int = typer.Option(32, help="melcnn base width (32 = ~270k parameters). Default 32."),
    seed: int = typer.Option(0, help="Random seed. Default 0."),
    folds: int = typer.Option(0, help="Also train K models on speaker-grouped folds of the training split, for "
                              "out-of-fold probabilities (label-issue detection). Default 0 = off."),
    apply_flags: bool = typer.Option(False, "--apply-flags", help="Train on flag-corrected labels. Default off."),
    cutoff_policy: str = typer.Option("class", help="With --apply-flags: 'class' puts cut-off, noise-only and "
                                      "multiple-words clips in a _cutoff_ class (_unknown_ in v1-12); 'exclude' "
                                      "leaves them out. Default class."),
    parent: str = typer.Option(None, "--parent", help="Run this one improves on (for compare). Default with "
                               "--apply-flags: the newest complete run of the data set."),
    resume: str = typer.Option(None, "--resume", help="Continue an interrupted run (id or name) where it stopped. "
                               "Default: start a new run."),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the model. Default off."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Train one batch, then stop (no inference). Default off."),
    infer: bool = typer.Option(True, "--infer/--no-infer", help="Run inference right after training. Default on."),
) -> None:
    """Train a classifier on a data set (then, by default, infer every clip with it)."""
    from app.pipeline.infer import infer_run
    from app.pipeline.run_spec import RunSpec
    from app.pipeline.train import train_run
    from ml.config import TrainConfig
    from ml.device import dist_env

    cfg = TrainConfig(model=model, classes=classes, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
                      label_smoothing=label_smoothing, speed_perturb=speed_perturb, width=width, seed=seed,
                      compile=compile_model, dry_run=dry_run)
    spec = RunSpec(apply_flags=apply_flags, cutoff_policy=cutoff_policy, folds=folds)
    main = dist_env().is_main
    with user_errors():
        s = store()
        with progress_bar() as bar:
            run_id = train_run(s, dataset, cfg, name=name, parent=parent, resume=resume,
                               progress=_progress(bar) if main else None, spec=spec)
        if not main:
            return
        console.print(f"[green]trained[/] run {run_id}; checkpoints in {s.settings.runs_dir / str(run_id)}")
        if infer and not dry_run:
            with progress_bar() as bar:
                infer_run(s, run_id, progress=_progress(bar))
            _print_runs(s, only=run_id)
        console.print(f"run id: {run_id}")


@app.command("infer")
def infer_cmd(
    run: str = typer.Option("latest", "--run", "-r", help="Run id, name or 'latest'. Default latest."),
    batch_size: int = typer.Option(0, help="Clips per batch. Default 0: the run's eval batch size."),
) -> None:
    """Predict and embed every clip with a run's best checkpoint; replaces that run's predictions atomically."""
    from app.pipeline.infer import infer_run

    with user_errors():
        s = store()
        with progress_bar() as bar:
            run_id = infer_run(s, run, progress=_progress(bar), batch_size=batch_size or None)
        _print_runs(s, only=run_id)


@app.command()
def runs() -> None:
    """List the runs: id, name, model, status, epochs and per-split accuracy / macro-F1."""
    with user_errors():
        _print_runs(store())


def _print_runs(s, only: int | None = None) -> None:
    """Print the runs of store ``s`` (or only run ``only``)."""
    from app.store.runs import list_runs

    with s.session() as session:
        rows = [r for r in list_runs(session) if only is None or r.id == only]
    if not rows:
        console.print("no runs yet; train one with `earmark train --dataset NAME`")
        return
    console.print("[bold]runs[/] (accuracy / macro-F1 in % per split)")
    for r in rows:
        def cell(split: str, r=r) -> str:
            m = r.metrics.get(split)
            return f"{100 * m['accuracy']:.1f}/{100 * m['macro_f1']:.1f}" if m else "-"

        status = r.status if r.status != "failed" else f"[red]failed[/] ({(r.error or '')[:60]})"
        if r.resume:  # its process is gone
            status = f"[yellow]interrupted[/] (resume: `{r.resume}`)"
        console.print(f"  [bold]{r.id}[/]  {r.name} [dim]({r.dataset})[/]  {r.model}  {status}  "
                      f"epochs {r.epochs}/{r.planned_epochs}  train {cell('train')}  "
                      f"val {cell('validation')}  test {cell('test')}", soft_wrap=True, highlight=False)
