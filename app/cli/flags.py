"""Commands that close the loop: list, export and import flags, write a relabeled copy, compare runs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from app.cli import app
from app.cli.common import console, err_console, progress_bar, settings, user_errors
from app.errors import EarmarkError
from app.flags import POLICIES, REASONS
from app.limits import MAX_ID


def _sessions():
    from app.store.db import open_store

    return open_store(settings()).sessions


@app.command("flags")
def list_flags_cmd(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set id or name. Default: every data set."),
    reason: str = typer.Option(None, "--reason", "-r",
                               help=f"Only this reason: {', '.join(REASONS)}. Default: all."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=MAX_ID, help="Show at most this many flags (newest first). Default: 50."),
) -> None:
    """List the flags queue, newest change first, with the counts per reason."""
    from app.pipeline.flags import count_flags, list_flags

    with user_errors(), _sessions()() as s:
        rows = list_flags(s, dataset, reason, limit=limit)
        counts = count_flags(s, dataset)
    table = Table(title=f"{counts['total']} flag(s): " + ", ".join(
        f"{k} {v}" for k, v in counts.items() if k != "total" and v))
    for col in ("clip", "path", "label", "reason", "corrected", "note", "author", "time"):
        table.add_column(col, overflow="fold")
    for r in rows:
        author = r["author"] + (f" (issue {r['finding_id']})" if r["finding_id"] else "")
        table.add_row(str(r["clip_id"]), r["path"], r["label"], r["reason"], r["corrected_label"] or "",
                      r["note"], author, r["updated_at"])
    console.print(table)


@app.command("export-flags")
def export_flags_cmd(
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set id or name. Default: every data set."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or json. Default: csv."),
    out: Path = typer.Option(None, "--out", "-o", help="File to write. Default: standard output."),
) -> None:
    """Write the flags (path, original label, reason, corrected label, note, author, time) as CSV or JSON."""
    from app.pipeline.flags import export_flags

    with user_errors(), _sessions()() as s:
        text = export_flags(s, fmt, dataset)
        if out is None:  # bytes, so the CSV's CRLF line ends survive on every platform
            sys.stdout.flush()
            sys.stdout.buffer.write(text.encode("utf-8"))
            sys.stdout.buffer.flush()
            return
        tmp = out.with_name(out.name + ".partial")
        try:
            tmp.write_text(text, encoding="utf-8", newline="")
            tmp.replace(out)
        except OSError as exc:
            raise EarmarkError(f"cannot write {out}: {exc.strerror}", hint="pick a writable path") from None
    err_console.print(f"wrote {text.count(chr(10)) - 1 if fmt == 'json' else len(text.splitlines()) - 1} "
                      f"flag line(s) to {out}")


@app.command("import-flags")
def import_flags_cmd(
    file: Path = typer.Argument(..., help="A CSV or JSON file in the `earmark export-flags` format."),
    dataset: str = typer.Option(None, "--dataset", "-d",
                                help="Put every row into this data set (id or name), ignoring the file's "
                                     "dataset column. Default: the column, else the newest data set."),
    fmt: str = typer.Option(None, "--format", "-f", help="csv or json. Default: guessed from the content."),
) -> None:
    """Import flags from a file: all rows or none (problems are listed by line), last write wins per clip."""
    from app.pipeline.flags import import_flags

    with user_errors():
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise EarmarkError(f"cannot read {file}: {exc.strerror}", hint="check the path") from None
        cfg = settings()
        with _sessions()() as s:
            res = import_flags(s, data, fmt, dataset, default_author=cfg.user)
    console.print(f"imported {res.rows} row(s) into {', '.join(res.datasets) or 'no data set'}: "
                  f"{res.created} new flag(s), {res.updated} updated")


@app.command("relabel")
def relabel_cmd(
    to: Path = typer.Option(..., "--to", help="An empty or new folder outside the data set."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set id or name. Default: the newest."),
    cutoff_policy: str = typer.Option(POLICIES[0], "--cutoff-policy",
                                      help="class: cut-off, noise-only and multiple-words clips (and clips "
                                           "flagged mislabeled as _cutoff_) go to _cutoff_/; exclude: they are "
                                           "left out. The same rule as `earmark train --apply-flags`. "
                                           "Default: class."),
) -> None:
    """Write a corrected copy of the data set in the Speech Commands layout (hard links where possible)."""
    from app.pipeline.relabel import relabel_to_dir

    with user_errors(), _sessions()() as s, progress_bar(err_console) as bar:
        task = bar.add_task("relabel", total=None)
        sm = relabel_to_dir(s, to, dataset, cutoff_policy,
                            progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {sm.clips} clips and {sm.noise_files} background-noise files to {sm.out_dir} "
                  f"({sm.linked} hard links, {sm.copied} copies)")
    console.print(f"  mislabeled -> corrected label: {sm.moved}; -> _cutoff_: {sm.to_cutoff}; "
                  f"left out: {sm.excluded}; renamed to avoid a clash: {sm.renamed}")
    console.print("  splits: " + ", ".join(f"{k} {v}" for k, v in sorted(sm.splits.items()))
                  + f"; file list: {Path(sm.out_dir) / 'relabel_manifest.csv'}")
    console.print("  labels: " + ", ".join(f"{k} {v}" for k, v in sm.per_label.items()))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ab(a: float | None, b: float | None, delta: float | None) -> str:
    """``a -> b (+d)`` in percent and points."""
    text = f"{_pct(a)} -> {_pct(b)}"
    return text + (f" ({100 * delta:+.1f})" if delta is not None else "")


@app.command("compare")
def compare_cmd(
    a: str = typer.Argument(None, help="Baseline run (id, name or latest). Default: B's parent run, else the "
                                       "previous complete run of its data set."),
    b: str = typer.Argument(None, help="Newer run (id, name or latest). Default: the newest complete run."),
    split: str = typer.Option("test", "--split", "-s", help="Split for the per-class table. Default: test."),
    show: int = typer.Option(10, "--show", min=0, max=MAX_ID, help="List this many fixed and broken clips. Default: 10."),
) -> None:
    """Compare two runs of one data set: accuracy, same-target vs relabeled clips, per class, changed clips."""
    from app.pipeline.compare import changed_clips, compare_runs, pick_runs

    with user_errors(), _sessions()() as s:
        if split not in ("train", "validation", "test"):
            raise EarmarkError(f"unknown split {split!r}", hint="use train, validation or test")
        ra, rb = pick_runs(s, a, b)
        cmp = compare_runs(s, ra, rb)
        fixed, n_fixed = changed_clips(s, ra, rb, "fixed", split, limit=show)
        broke, n_broke = changed_clips(s, ra, rb, "broke", split, limit=show)
    console.print(f"[bold]a[/] = run {ra.id} ({ra.name}, {len(ra.classes)} classes)   "
                  f"[bold]b[/] = run {rb.id} ({rb.name}, {len(rb.classes)} classes, "
                  f"{cmp['b']['n_flags_used']} flags used)")
    splits = list(cmp["splits"])
    t = Table(title="accuracy, a -> b (points)")
    t.add_column("")
    for name in splits:
        t.add_column(name, justify="right")
    ag = {name: sp["agreement"] for name, sp in cmp["splits"].items()}
    t.add_row("all clips", *[_ab(sp["a"]["accuracy"], sp["b"]["accuracy"], sp["delta"]["accuracy"])
                             for sp in cmp["splits"].values()])
    t.add_row("[bold]same target[/]", *[_ab(g["same_target"]["a_accuracy"], g["same_target"]["b_accuracy"],
                                            g["same_target"]["delta"]) + f"  n={g['same_target']['n']}"
                                        for g in ag.values()])
    t.add_row("relabeled", *[_ab(g["relabeled"]["a_accuracy"], g["relabeled"]["b_accuracy"], None)
                             + f"  n={g['relabeled']['n']}" for g in ag.values()])
    t.add_row("fixed / broke", *[f"{g['fixed']} / {g['broke']}" for g in ag.values()])
    console.print(t)
    console.print("Judge the model by 'same target': 'all clips' also counts clips whose target the flags "
                  "changed, which can move it without the model getting better.")
    sp = cmp["splits"].get(split)
    if sp is None:
        console.print(f"[yellow]no metrics for split {split!r}[/]")
        return
    pc = Table(title=f"per class, {split}: a -> b (points)")
    for col in ("class", "precision", "recall", "F1", "support a/b"):
        pc.add_column(col, justify="right")
    for row in sp["per_class"]:
        ga, gb, d = row["a"] or {}, row["b"] or {}, row["delta"]
        pc.add_row(row["class"], *[_ab(ga.get(k), gb.get(k), d[k]) for k in ("precision", "recall", "f1")],
                   f"{ga.get('support', '-')}/{gb.get('support', '-')}")
    console.print(pc)
    for title, rows, n in (("fixed (wrong in a, right in b)", fixed, n_fixed),
                           ("broke (right in a, wrong in b)", broke, n_broke)):
        ct = Table(title=f"{title}: {n} in {split}" + (f", first {len(rows)}" if n > len(rows) else ""))
        for col in ("clip", "path", "a: target -> pred", "b: target -> pred", "relabeled"):
            ct.add_column(col, overflow="fold")
        for r in rows:
            ct.add_row(str(r["clip_id"]), r["path"], f"{r['a_target']} -> {r['a_pred']}",
                       f"{r['b_target']} -> {r['b_pred']}", "yes" if r["relabeled"] else "")
        console.print(ct)
