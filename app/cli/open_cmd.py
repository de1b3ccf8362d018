"""``earmark open PATH``: your own data set, from files to the web app in one command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from app.cli import app
from app.cli.common import console, progress_bar, store, user_errors
from app.cli.data import (
    AUDIO_DIR,
    LABEL_COLUMN,
    MANIFEST,
    MAX_SECONDS,
    NAME_PATTERN,
    PATH_COLUMN,
    SAMPLE_RATE,
    SPEAKER_COLUMN,
    SPEAKER_TABLE,
    SPLIT_COLUMN,
    ingest_options,
    print_report,
)


@app.command("open")
def open_cmd(
    path: Path = typer.Argument(..., help="Data set folder or manifest file (anything `earmark ingest` reads)."),
    name: str = typer.Option(None, "--name", "-n", help="Data set name. Default: the folder's name."),
    manifest: Path = MANIFEST,
    name_pattern: str = NAME_PATTERN,
    speaker_table: Path = SPEAKER_TABLE,
    audio_dir: str = AUDIO_DIR,
    path_column: str = PATH_COLUMN,
    label_column: str = LABEL_COLUMN,
    split_column: str = SPLIT_COLUMN,
    speaker_column: str = SPEAKER_COLUMN,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = MAX_SECONDS,
    predictions: Path = typer.Option(None, "--predictions", help="Your model's run file (.parquet, .npz or .csv, "
                                     "as `earmark import-run` reads): import it instead of training. Default: train."),
    model: str = typer.Option("melcnn", help="melcnn (log-mel residual CNN) or m5 (raw waveform). Default melcnn."),
    epochs: int = typer.Option(25, help="Training epochs. Default 25."),
    batch_size: int = typer.Option(64, help="Clips per training step. Default 64."),
    seed: int = typer.Option(0, help="Random seed. Default 0."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve the web app at the end. Default on."),
    host: str = typer.Option(None, help="Address to serve on (default: EARMARK_HOST, else 127.0.0.1)."),
    port: int = typer.Option(None, help="Port to serve on (default: EARMARK_PORT, else 8000)."),
) -> None:
    """Ingest PATH, train a model, infer, project and analyse, then serve: run it again and it reuses what is done."""
    from app.pipeline.open_data import STEPS, OpenOptions, open_path
    from ml.config import TrainConfig

    opts = OpenOptions(path=path, name=name, sample_rate=sample_rate,
                       max_seconds="default" if max_seconds is None else max_seconds,
                       ingest=ingest_options(manifest, name_pattern, speaker_table, audio_dir, path_column,
                                             label_column, split_column, speaker_column),
                       train=TrainConfig(model=model, epochs=epochs, batch_size=batch_size, seed=seed),
                       predictions=predictions)
    with user_errors():
        s = store()
        with progress_bar() as bar:
            task = bar.add_task("ingest", total=None)

            def on_progress(stage: str, done: int, total: int) -> None:
                step = stage.split(":", 1)[0]
                n = STEPS.index(step) + 1 if step in STEPS else 0
                bar.update(task, description=f"[{n}/{len(STEPS)}] {stage}", completed=done, total=total or None)

            result = open_path(s, opts, progress=on_progress)
        print_report(result.report)
    done = ", ".join(f"{step} {how}" for step, how in result.steps.items())
    console.print(f"[green]ready:[/] data set {escape(result.dataset_name)} (id {result.dataset_id}), "
                  f"run {result.run_id}; {done}", soft_wrap=True)
    if serve:
        from app.cli.serve import serve as serve_cmd

        serve_cmd(host=host, port=port, reload=False)
