"""Run files in and out: ``earmark import-run FILE`` (another model's outputs) and ``earmark export-run RUN``."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli import app
from app.cli.common import console, progress_bar, store, user_errors


def _classes(classes: str | None, classes_file: Path | None) -> list[str] | None:
    """The class list from ``--classes a,b,...`` or ``--classes-file`` (one class per line, or a JSON list)."""
    import json

    from app.errors import EarmarkError

    if classes and classes_file:
        raise EarmarkError("give --classes or --classes-file, not both")
    if classes_file:
        try:
            text = Path(classes_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise EarmarkError(f"cannot read {classes_file}", str(exc), "give a readable text file") from None
        if text.lstrip().startswith("["):
            try:
                return [str(c) for c in json.loads(text)]
            except ValueError as exc:
                raise EarmarkError(f"{classes_file} is not a JSON list", str(exc), "one class per line also works") from None
        return [line.strip() for line in text.splitlines() if line.strip()]
    if classes:
        return [c.strip() for c in classes.split(",") if c.strip()]
    return None


def print_import(s) -> None:
    """The lines ``import-run`` (and ``open --predictions``) print about an import."""
    console.print(f"imported run {s.run_id} ({s.name}) on {s.dataset}: model {s.model}, {s.n_rows:,} rows in "
                  f"{s.seconds.get('total', 0):.1f}s" + (f", class map {s.class_map}" if s.class_map else ""))
    console.print(f"coverage: {s.coverage_text}")
    for split, m in s.metrics.items():
        console.print(f"  {split}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")
    if s.missing:
        console.print(f"[yellow]reduced run:[/] imported without {', '.join(s.missing)}; "
                      "`earmark analyze` skips what needs them")
    console.print(f"next: `earmark project --run {s.run_id}` then `earmark analyze --run {s.run_id}`")


@app.command("import-run")
def import_run_cmd(
    file: Path = typer.Argument(..., help="Run file: .parquet (primary), .npz or .csv."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Data set id or name the predictions are for."),
    name: str = typer.Option(..., "--name", "-n", help="Name of the new run."),
    classes: str = typer.Option(None, "--classes", help="The model's classes in output order, comma-separated. "
                                "Default: the file's `earmark.classes` metadata (or its `classes`)."),
    classes_file: Path = typer.Option(None, "--classes-file", help="The class list from a file (one per line, "
                                      "or a JSON list). Default: none."),
    logits: bool = typer.Option(False, "--logits", help="The file holds logits, not probabilities (softmax is "
                                "applied). Default off."),
    task: str = typer.Option(None, "--task", help="Class map when the model's classes are not the data set's "
                             "labels, e.g. v1-12 (other words count as _unknown_). Default: none."),
    oof: bool = typer.Option(False, "--oof", help="The training clips' probabilities are out-of-sample (label "
                             "issues use them, as after `train --folds`). Default off."),
    model: str = typer.Option(None, "--model", help="The model's name. Default: the file's `earmark.model`, "
                              "else 'imported'."),
) -> None:
    """Create a run from another model's predictions (and embeddings): a full citizen of every page."""
    from app.pipeline.import_run import import_run

    with user_errors():
        cls = _classes(classes, classes_file)
        with progress_bar() as bar:
            task_id = bar.add_task("reading", total=1)

            def update(step: str, done: int, total: int) -> None:
                bar.update(task_id, description=step, completed=done, total=total or 1)

            s = import_run(store(), file, dataset, name, classes=cls, logits=logits, task=task, oof=oof,
                           model=model, progress=update)
    print_import(s)


@app.command("export-run")
def export_run_cmd(
    run: str = typer.Argument(..., help="Run id or name, or 'latest'."),
    out: Path = typer.Option(..., "--out", "-o", help="Parquet file to write (replaced if it exists)."),
) -> None:
    """Write a run's predictions, embeddings, targets, losses and agreement as a Parquet run file."""
    import time

    from app.pipeline.import_run import export_run

    t0 = time.perf_counter()
    with user_errors():
        path, n = export_run(store(), run, out)
    console.print(f"wrote {n:,} rows to {path} in {time.perf_counter() - t0:.1f}s "
                  "(read it with pandas.read_parquet, or import it with `earmark import-run`)")
