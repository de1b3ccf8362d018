"""Data commands: ``earmark ingest PATH`` and ``earmark download speech-commands``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from app.cli import app
from app.cli.common import console, progress_bar, store, user_errors

download_app = typer.Typer(help="Fetch public data sets (with resume, checksum and safe extraction).",
                           no_args_is_help=True)
app.add_typer(download_app, name="download")

# Options shared by `earmark ingest` and `earmark open` (typer reads these defaults as the options).
MANIFEST = typer.Option(None, "--manifest", "-m", help="A manifest (CSV, TSV, Parquet or JSON Lines, one row per "
                        "clip: path, label, optional split and speaker, any other column is metadata) whose paths "
                        "are relative to PATH.")
NAME_PATTERN = typer.Option(None, "--name-pattern", help="Regular expression on each file name with named groups "
                            "label, speaker, split and any others (metadata), e.g. "
                            "'(?P<label>\\d)_(?P<speaker>[a-z]+)_(?P<take>\\d+)\\.wav'.")
SPEAKER_TABLE = typer.Option(None, "--speaker-table", help="A per-speaker table (a speaker column and metadata "
                             "columns) joined onto the clips. Default: the one such table next to the data, if any.")
AUDIO_DIR = typer.Option(None, "--audio-dir", help="The folder inside PATH that the manifest's paths are "
                         "relative to (e.g. clips/ or audio/).")
PATH_COLUMN = typer.Option(None, "--path-column", help="Manifest column naming each clip's file. Default: "
                           "path/file/filename/slice_file_name.")
LABEL_COLUMN = typer.Option(None, "--label-column", help="Manifest column with the label. Default: "
                            "label/class/category.")
SPLIT_COLUMN = typer.Option(None, "--split-column", help="Manifest column with the split (train/val/test); "
                            "'' ignores a split column. Default: split.")
SPEAKER_COLUMN = typer.Option(None, "--speaker-column", help="Manifest column with the speaker; '' ignores it. "
                              "Default: speaker/speaker_id/client_id.")
SAMPLE_RATE = typer.Option(None, "--sample-rate", help="Required sample rate in Hz; other files are rejected. "
                           "Default: 16000 for Speech Commands-style folders, each file's own rate (8-48 kHz) "
                           "for manifests and name patterns.")
MAX_SECONDS = typer.Option(None, "--max-seconds", help="Longest clip accepted, in seconds; longer files are "
                           "rejected. Default: 1.0 for Speech Commands-style folders, 30 for manifests and "
                           "name patterns.")


def ingest_options(manifest: Path | None, name_pattern: str | None, speaker_table: Path | None,
                   audio_dir: str | None, path_column: str | None, label_column: str | None,
                   split_column: str | None, speaker_column: str | None):
    """The ``IngestOptions`` the command-line options describe (an empty column name ignores that column)."""
    from app.pipeline.ingest_plan import IngestOptions

    columns = {role: value for role, value in (("path", path_column), ("label", label_column),
                                               ("split", split_column), ("speaker", speaker_column))
               if value is not None}
    return IngestOptions(manifest=manifest, name_pattern=name_pattern, speaker_table=speaker_table,
                         audio_dir=audio_dir, columns=columns)


_STAGE_TEXT = {"scanning": "listing files", "decoding": "decoding + measuring", "writing": "writing to the store",
               "finishing": "leakage check + commit"}


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="Data set folder or manifest file: Speech Commands (v0.01/v0.02 or a "
                                "test-set archive), any folder with one sub-folder of audio files per class, "
                                "train/val/test folders, a folder with a manifest or train/val/test manifests, "
                                "or a manifest file."),
    name: str = typer.Option(None, "--name", "-n", help="Name to store it under. Default: the folder's name."),
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
    workers: int = typer.Option(0, help="Decoding processes. Default 0: one per CPU core."),
) -> None:
    """Ingest a data set: clips, splits, speakers, metadata, signal stats, rejects and a leakage report."""
    from app.pipeline.ingest import ingest as run_ingest

    options = ingest_options(manifest, name_pattern, speaker_table, audio_dir, path_column, label_column,
                             split_column, speaker_column)

    with user_errors(), progress_bar() as bar:
        task = bar.add_task("listing files", total=None)

        def on_progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=_STAGE_TEXT.get(stage, stage), completed=done, total=total or None)

        report = run_ingest(store(), path, name=name, progress=on_progress, sample_rate=sample_rate,
                            max_seconds="default" if max_seconds is None else max_seconds,
                            workers=workers or None, options=options)
    print_report(report)


def print_report(report) -> None:
    """Print an ``IngestReport``: clips per split, speakers, rejects, list stats and leakage."""
    if report.unchanged:
        console.print(f"[green]unchanged:[/] {escape(report.name)} (id {report.dataset_id}) is already up to date; "
                      "kept as is, so its runs stay valid.")
    else:
        console.print(f"[green]ingested[/] {escape(report.name)} (id {report.dataset_id}) from {escape(report.root)} "
                      f"in {report.seconds:.1f} s ({report.clips_per_s:,.0f} files/s)", soft_wrap=True)
    console.print(f"layout: {report.layout}; splits from: {report.split_source}; {len(report.labels)} labels; "
                  f"{report.n_noise_files} background-noise files")
    for note in report.notes:
        console.print(f"[dim]{escape(note)}[/]", soft_wrap=True)
    if report.meta_columns:
        console.print("metadata: " + ", ".join(f"{escape(k)} ({v})" for k, v in report.meta_columns.items()),
                      soft_wrap=True)
    table = Table("split", "clips", "speakers")
    for split in ("train", "validation", "test"):
        table.add_row(split, f"{report.splits.get(split, 0):,}", f"{report.speakers_per_split.get(split, 0):,}")
    table.add_row("[bold]all", f"[bold]{report.n_clips:,}", f"[bold]{report.n_speakers:,}")
    console.print(table)
    missing = report.list_stats.get("listed_missing")
    if missing and any(missing.values()):
        console.print(f"split lists: {missing.get('validation', 0):,} validation and {missing.get('test', 0):,} "
                      "test entries name files that are not in the folder (counted, not an error)")
    if report.n_clips:
        console.print(f"cut-off indicator: {report.n_cutoff_signal:,} clips "
                      f"({100 * report.n_cutoff_signal / report.n_clips:.1f}%) still have speech in their last 50 ms")
        if report.quality:
            console.print("audio quality: " + ", ".join(f"{n:,} {kind.replace('_', ' ')}"
                                                        for kind, n in report.quality.items())
                          + " (the clip list's audio-quality filter lists them)")
        else:
            console.print("audio quality: no clipped, too quiet, DC-offset, silent or upsampled clips")
        if report.quality_unmeasured:
            console.print(f"[yellow]audio quality not measured on {report.quality_unmeasured:,} clips[/] "
                          "(ingested before earmark measured it): run this ingest again to measure them")
    if report.rejects:
        console.print(f"[yellow]{report.n_rejects:,} files rejected[/] (stored; nothing else was lost):")
        for reason, info in report.rejects.items():
            console.print(f"  {escape(reason)}: {info['count']:,}")
            for ex in info["examples"]:
                console.print(f"    {escape(ex['path'])}  [dim]{escape(ex['detail'])}[/]", soft_wrap=True)
    else:
        console.print("no files rejected")
    counts = report.leakage.get("counts") or {}
    if any(counts.values()):
        console.print("[yellow]leakage between splits:[/]")
        for key, label in (("files_in_several_splits", "files in more than one split"),
                           ("speakers_in_several_splits", "speakers in more than one split"),
                           ("identical_audio_across_splits", "identical audio in different splits")):
            items = report.leakage.get(key) or []
            shown = ", ".join(_leak_item(i) for i in items[:5])
            console.print(f"  {label}: {counts.get(key, 0):,}" + (f"  e.g. {escape(shown)}" if shown else ""), soft_wrap=True)
    elif report.leakage.get("speaker_leakage") == "not_checked" or not report.n_speakers:
        console.print("leakage: no file or identical audio in more than one split; [yellow]speaker leakage not "
                      "checked[/]: the clips name no speakers (give them with a speaker column or --name-pattern)")
    elif report.leakage.get("speaker_leakage") == "partial":
        console.print("leakage: none found, but [yellow]speaker leakage only partly checked[/]: some clips name "
                      "no speaker")
    else:
        console.print("leakage: none (no file, speaker or identical audio in more than one split)")
    dups = report.leakage.get("duplicate_audio", 0)
    if dups:
        console.print(f"duplicate audio: {dups:,} clips repeat another clip's samples exactly")


def _leak_item(item) -> str:
    if isinstance(item, str):
        return item
    if "speaker" in item:
        return f"{item['speaker']} ({'/'.join(item['splits'])})"
    return f"{' = '.join(item['paths'][:2])} ({'/'.join(item['splits'])})"


@download_app.command("speech-commands")
def download_speech_commands(
    version: str = typer.Option("v0.02", "--version", help="Data set version: v0.01 or v0.02. Default v0.02."),
    to: Path = typer.Option(Path("data"), "--to", help="Folder to download and extract into. Default ./data."),
    sha256: str = typer.Option(None, "--sha256", help="Expected SHA-256 of the archive. Default: none known, "
                               "so the size and the gzip CRCs verify it."),
    base_url: str = typer.Option("http://download.tensorflow.org/data", "--base-url",
                                 help="Where the archives live. Default: the official TensorFlow URL."),
    test_set: bool = typer.Option(False, "--test-set", help="Fetch the official 12-class test-set archive "
                                  "(keywords, _unknown_, _silence_) instead of the training archive. Default: off."),
) -> None:
    """Download Google's Speech Commands archive (resumable), verify it and extract it safely."""
    from app.download import download_speech_commands as run_download

    with user_errors(), Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), console=console, transient=True) as bar:
        dl = bar.add_task("downloading", total=None)
        ex = None

        def on_progress(stage: str, done: int, total: int) -> None:
            nonlocal ex
            if stage == "downloading":
                bar.update(dl, completed=done, total=total or None)
            else:
                if ex is None:
                    ex = bar.add_task("extracting", total=None)
                bar.update(ex, description=f"extracting: {done:,} files")

        result = run_download(version, to, base_url=base_url, progress=on_progress, sha256=sha256, test_set=test_set)
    console.print(f"[green]ready:[/] {escape(str(result.folder))}", soft_wrap=True)
    console.print(f"archive {escape(str(result.archive))} sha256 {result.sha256}", soft_wrap=True)
    console.print(f"verified by: {', '.join(result.verified_by) or 'nothing (already extracted)'}"
                  + ("" if "sha256" in result.verified_by else "; pass --sha256 to pin the checksum"))
    if result.resumed_from:
        console.print(f"resumed from byte {result.resumed_from:,}")
    console.print(f"next: earmark ingest {escape(str(result.folder))} --name speech-commands-{version}"
                  + ("-test-set" if test_set else ""), soft_wrap=True)
