"""``earmark project``, ``earmark analyze`` and ``earmark flag-finding``: thin wrappers over the pipeline."""

from __future__ import annotations

from contextlib import contextmanager

import typer
from rich.markup import escape
from rich.table import Table

from app.cli import app
from app.cli.common import console, progress_bar, store, user_errors
from app.limits import MAX_ID


@contextmanager
def _steps():
    """A rich progress bar fed by the pipeline's ``progress(step, done, total)`` callback."""
    with progress_bar() as bar:
        task = bar.add_task("starting", total=1)

        def update(step: str, done: int, total: int) -> None:
            bar.update(task, description=step, completed=done, total=total)

        yield update


@app.command()
def project(
    run: str = typer.Option("latest", "--run", "-r", help="Run id or name, or 'latest'. Default: latest."),
    seed: int = typer.Option(-1, help="UMAP seed; -1 (default) lets UMAP use both cores (not reproducible)."),
    neighbors: bool = typer.Option(True, help="Also store each clip's 10 nearest clips (cosine). Default: on."),
) -> None:
    """UMAP the run's embeddings to 2-D for the cloud, and precompute each clip's nearest clips."""
    from app.pipeline.project import project_run

    with user_errors(), _steps() as progress:
        s = project_run(store(), run, progress=progress, seed=None if seed < 0 else seed, neighbors=neighbors)
    console.print(f"projected run {s.run_id}: {s.n_clips:,} clips; numba warm-up {s.warmup_s:.1f}s, "
                  f"neighbours {s.neighbors_s:.1f}s, UMAP {s.umap_s:.1f}s, write {s.write_s:.1f}s")


@app.command()
def analyze(
    run: str = typer.Option("latest", "--run", "-r", help="Run id or name, or 'latest'. Default: latest."),
    seed: int = typer.Option(0, help="Seed for the clustering subsample and cleanlab ties. Default: 0."),
    train_without_oof: str = typer.Option(
        "neighbors", help="Label issues for training clips without out-of-fold probabilities (no --folds): "
        "'neighbors' judges them by their nearest clips' labels, 'skip' leaves them out. Default: neighbors."),
) -> None:
    """Run every detector (cut-off, label issues, error clusters, duplicates, outliers, audio quality) and rank
    the findings."""
    from app.pipeline.analyze import analyze_run
    from app.store.findings import findings_of

    with user_errors():
        if train_without_oof not in ("neighbors", "skip"):
            from app.errors import EarmarkError

            raise EarmarkError(f"--train-without-oof must be 'neighbors' or 'skip', not {train_without_oof!r}")
        st = store()
        with _steps() as progress:
            s = analyze_run(st, run, progress=progress, seed=seed, train_without_oof=train_without_oof)
        with st.session() as session:
            findings = findings_of(session, s.run_id)
    console.print(f"analyzed run {s.run_id}: {s.n_clips:,} clips in {s.timings.get('total', 0):.1f}s; "
                  f"{s.n_cutoff:,} look cut off, {s.n_label_issues:,} label issues, {s.n_clusters} clusters, "
                  f"{s.n_duplicate_pairs:,} duplicate pairs")
    console.print(f"label issues checked on {s.label_scope}")
    if s.n_quality:
        console.print("from the audio itself (quality, noise only): " + ", ".join(f"{n:,} {kind.replace('_', ' ')}" for kind, n in s.n_quality.items()))
    for why in s.skipped.values():
        console.print(f"[yellow]skipped:[/] {escape(why)}")
    if not s.neighbors_reused:
        console.print("nearest neighbours computed here (run `earmark project` first to reuse its graph)")
    table = Table("rank", "id", "kind", "clips", "score", "title")
    for f in findings:
        table.add_row(str(f.rank), str(f.id), f.kind, f"{f.n_clips:,}", f"{f.score:.1f}", f.title)
    console.print(table)


@app.command("flag-finding")
def flag_finding_cmd(
    finding: int = typer.Argument(None, min=1, max=MAX_ID, help="Finding id (see `earmark analyze` or the Issues "
                                  "page)."),
    run: str = typer.Option(None, "--run", "-r", help="With --top: run id or name, or 'latest'. Default: none."),
    top: str = typer.Option(None, help="With --run: flag the best-ranked finding of this kind "
                            "(cutoff, label, cluster, duplicate, outlier, or an audio-quality one: clipped, "
                            "too_quiet, dc_offset, silent, upsampled). Default: none."),
    author: str = typer.Option("auto", help="Author recorded on the flags. Default: auto (a detector)."),
    overwrite_people: bool = typer.Option(False, "--overwrite-people",
                                          help="Also replace flags that people wrote. Default: keep them."),
) -> None:
    """Flag every clip of a finding with its reason and suggested label (author 'auto').

    Flags that people wrote are kept unless --overwrite-people; the output says how many.
    """
    from app.errors import EarmarkError
    from app.pipeline.flags import flag_finding, flag_top_finding
    from app.store.findings import get_finding

    with user_errors():
        if (finding is None) == (top is None):
            raise EarmarkError("give a finding id, or --run R --top KIND",
                               hint="e.g. `earmark flag-finding 3` or `earmark flag-finding --run latest --top cutoff`")
        with store().session() as session:
            if top:
                f, res = flag_top_finding(session, run or "latest", top, author, overwrite_people)
            else:
                f = get_finding(session, finding)
                res = flag_finding(session, f.id, author=author, overwrite_people=overwrite_people)
            console.print(f"flagged {res.flagged:,} clips of finding {f.id} ({f.kind}: {f.title}) as "
                          f"{f.reason or 'other'}")
            if res.kept or res.replaced or res.skipped:
                console.print(f"  kept {res.kept:,} flag(s) people wrote"
                              + (f", replaced {res.replaced:,}" if res.replaced else "")
                              + (" (use --overwrite-people to replace them)" if res.kept else "")
                              + (f"; skipped {res.skipped:,} clip(s) without a suggested label" if res.skipped
                                 else ""))
