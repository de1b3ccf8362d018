"""The compare page: what changed between two runs of one data set, and its JSON API.

- ``GET /compare?a=&b=&split=&kind=&page=``: per-class metrics side by side, the difference of the
  confusion matrices, accuracy on same-target vs relabeled clips, and the fixed/broken clips.
  Defaults: ``b`` = the ``run`` in the URL or the newest complete run; ``a`` = ``b``'s parent run,
  else the previous complete run of the same data set.
- ``GET /api/compare?a=&b=``: the comparison of every split as JSON.
- ``GET /api/compare/changes?a=&b=&kind=fixed|broke&split=&limit=&offset=``: the changed clips.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request

from app.errors import EarmarkError
from app.pipeline import compare as cmp
from app.store.runs import complete_run_choices
from app.web import charts
from app.web.deps import Offset, OptionalRunDep, SessionDep, render

router = APIRouter()
NAV = ("Compare", "/compare", 50)
PAGE_SIZE = 50
RunQ = Annotated[str | None, Query(max_length=200, description="run id or name")]
SplitQ = Annotated[Literal["train", "validation", "test"] | None, Query(description="train, validation or test")]
KindQ = Annotated[Literal["fixed", "broke"], Query(description="fixed: wrong in a, right in b; broke: the reverse")]


@router.get("/compare", summary="Compare two runs of one data set")
def show_compare(request: Request, session: SessionDep, current: OptionalRunDep, a: RunQ = None, b: RunQ = None,
                 split: SplitQ = None, kind: KindQ = "fixed", page: Annotated[int, Query(ge=1, le=100_000)] = 1):
    """The compare page (see the module doc for the defaults)."""
    runs = complete_run_choices(session)
    if not b and not a and current is not None and current.status == "complete":
        b = str(current.id)
    try:
        run_a, run_b = cmp.pick_runs(session, a, b)
    except EarmarkError as exc:  # never a dead end: the message, with both pickers on two different runs
        sel_a, sel_b = _suggest_pair(runs, a, b or (current.id if current is not None else None))
        return render(request, "compare.html", run=current, problem=exc, complete_runs=runs, result=None,
                      sel_a=sel_a, sel_b=sel_b)
    result = cmp.compare_runs(session, run_a, run_b)
    splits = list(result["splits"])
    if split is None or split not in result["splits"]:
        split = "test" if "test" in splits else (splits[-1] if splits else None)
    sp = result["splits"].get(split) if split else None
    changes, total = cmp.changed_clips(session, run_a, run_b, kind, split, limit=PAGE_SIZE,
                                       offset=(page - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    new_classes = [c for c in result["classes"] if c not in result["a"]["classes"]]
    figure = charts.confusion_diff_figure(result["classes"], sp["same_target_confusion_diff"],
                                          sp["same_target_confusion_a"], sp["same_target_confusion_b"],
                                          new_classes) if sp else None
    return render(request, "compare.html", run=run_b, run_a=run_a, run_b=run_b, result=result, split=split,
                  sp=sp, kind=kind, changes=changes, total=total, page=page, pages=pages, figure=figure,
                  complete_runs=runs, problem=None, sel_a=run_a.id, sel_b=run_b.id)


def _suggest_pair(runs: list[dict], a: str | None, b: str | int | None) -> tuple[int | None, int | None]:
    """Two different complete runs to preselect when the asked-for pair cannot be compared: ``b`` as asked
    (else the newest run), ``a`` as asked when it differs, else the newest other run of ``b``'s data set."""
    by_id = {str(r["id"]): r for r in runs}
    rb = by_id.get(str(b)) if b is not None else None
    rb = rb or (runs[0] if runs else None)
    if rb is None:
        return None, None
    ra = by_id.get(str(a)) if a else None
    if ra is None or ra["id"] == rb["id"]:
        ra = next((r for r in runs if r["id"] != rb["id"] and r["dataset"] == rb["dataset"]), None)
    return (ra["id"] if ra else None), rb["id"]


@router.get("/api/compare", summary="Compare two runs (every split) as JSON")
def api_compare(session: SessionDep, a: RunQ = None, b: RunQ = None) -> dict:
    """Per split: metrics of a and b with deltas, per-class rows, confusion matrices and their difference,
    same-target vs relabeled accuracy, and the counts of fixed and broken clips."""
    run_a, run_b = cmp.pick_runs(session, a, b)
    return cmp.compare_runs(session, run_a, run_b)


@router.get("/api/compare/changes", summary="Clips whose prediction changed between two runs")
def api_compare_changes(session: SessionDep, a: RunQ = None, b: RunQ = None, kind: KindQ = "fixed",
                        split: SplitQ = None, limit: Annotated[int, Query(ge=1, le=5000)] = PAGE_SIZE,
                        offset: Offset = 0) -> dict:
    """``{total, clips: [...]}``, ordered by clip path; ``relabeled`` marks clips whose target changed."""
    run_a, run_b = cmp.pick_runs(session, a, b)
    clips, total = cmp.changed_clips(session, run_a, run_b, kind, split, limit=limit, offset=offset)
    return {"a": run_a.id, "b": run_b.id, "kind": kind, "split": split, "total": total, "clips": clips}
