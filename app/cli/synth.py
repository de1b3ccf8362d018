"""``earmark synth OUT``: build the demo data set (eSpeak NG speech with planted defects)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from app.cli import app
from app.cli.common import console, progress_bar, user_errors
from app.errors import Conflict, EarmarkError


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Output folder; the data set goes to OUT/speech_commands and the "
                               "defect truth to OUT/defects.csv."),
    speakers: int = typer.Option(40, "--speakers", "-s", min=1, help="Number of synthetic speakers. Default 40 "
                                 "(about 4,200 clips; 1,000 speakers is the full v0.02 size, ~105k clips)."),
    seed: int = typer.Option(7, "--seed", help="Random seed; the same seed gives byte-identical data. Default 7."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Times each speaker says each word. Default 3."),
    workers: int = typer.Option(0, "--workers", "-w", min=0, help="Worker processes. Default 0: one per CPU core."),
    noise_seconds: float = typer.Option(60.0, "--noise-seconds", min=1.0,
                                        help="Length of each _background_noise_ file in seconds. Default 60."),
    force: bool = typer.Option(False, "--force", help="Rebuild and replace an existing OUT/speech_commands and "
                               "OUT/defects.csv. Default: keep one made with the same options, refuse others."),
) -> None:
    """Synthesise a Speech Commands v0.02-style demo data set with eSpeak NG, with planted defects
    (cut-off words, mislabeled clips, two words in a clip, noise-only clips) and their truth."""
    from ml.synth import DEFECTS, synthesize

    with user_errors():
        try:
            with progress_bar() as bar:
                task = bar.add_task("synthesising clips", total=None)
                report = synthesize(
                    out, speakers=speakers, seed=seed, repeats=repeats, workers=workers or None,
                    noise_seconds=noise_seconds, overwrite=force,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
        except FileExistsError:
            raise Conflict(
                f"{out / 'speech_commands'} already exists",
                "It was made with other options (or by hand); earmark synth will not write over a data set "
                "or its defects.csv.",
                "Pass --force to replace it, or choose another OUT folder.",
            ) from None
        except (ValueError, OSError) as exc:
            raise EarmarkError("could not synthesise the demo data", str(exc),
                               "Check OUT is a writable folder and the options are valid.") from None

    if report.unchanged:
        console.print(f"[green]unchanged:[/] {report.dataset_dir} already holds this data set "
                      f"({report.n_clips:,} clips, seed {seed}); nothing rewritten. Use --force to rebuild it.")
    else:
        console.print(f"[green]synthesised[/] {report.n_clips:,} clips from {report.n_speakers} speakers "
                      f"({len(report.words)} words, seed {seed}) in {report.seconds:.1f} s "
                      f"({report.n_clips / max(report.seconds, 1e-9):,.0f} clips/s)")
    table = Table("split", "speakers", "clips")
    for split in ("train", "validation", "test"):
        table.add_row(split, str(report.split_speakers[split]), f"{report.split_clips[split]:,}")
    console.print(table)
    defects = Table("planted defect", "clips", "share")
    for kind in DEFECTS:
        n = report.defect_counts[kind]
        defects.add_row(kind, f"{n:,}", f"{n / max(report.n_clips, 1):.1%}")
    console.print(defects)
    console.print(f"data set:         {report.dataset_dir}")
    console.print(f"  split lists:    {report.dataset_dir / 'validation_list.txt'}, "
                  f"{report.dataset_dir / 'testing_list.txt'}")
    console.print(f"  noise:          {report.background_dir} ({len(report.background_files)} files)")
    console.print(f"defect truth:     {report.defects_csv}")
    console.print(f"next: [bold]earmark ingest {report.dataset_dir}[/]")
