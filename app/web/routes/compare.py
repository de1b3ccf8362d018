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
from app.store.models import Dataset, Run
from app.web.deps import OptionalRunDep, SessionDep, render

router = APIRouter()
NAV = ("Compare", "/compare", 50)
PAGE_SIZE = 50
RunQ = Annotated[str | None, Query(max_length=200, description="run id or name")]
SplitQ = Annotated[Literal["train", "validation", "test"] | None, Query(description="train, validation or test")]
KindQ = Annotated[Literal["fixed", "broke"], Query(description="fixed: wrong in a, right in b; broke: the reverse")]
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=11, color="#1c2430")


def confusion_diff_figure(classes: list[str], diff: list[list[int]], cma: list[list[int]],
                          cmb: list[list[int]]) -> dict:
    """Heatmap of ``b - a`` confusion counts (rows: target, columns: prediction).

    Colour is the change *for the better*: green where b has more correct clips (diagonal) or fewer
    confusions (off the diagonal), red where it is worse. The cell text is the raw ``b - a`` count.
    """
    n = len(classes)
    good = [[(diff[i][j] if i == j else -diff[i][j]) for j in range(n)] for i in range(n)]
    top = max([abs(v) for row in good for v in row] + [1])
    text = [[(f"{diff[i][j]:+d}" if diff[i][j] else "") for j in range(n)] for i in range(n)]
    hover = [[f"target {classes[i]} → predicted {classes[j]}<br>a: {cma[i][j]} · b: {cmb[i][j]} · "
              f"b − a: {diff[i][j]:+d}" for j in range(n)] for i in range(n)]
    cell = 30 if n <= 20 else 22
    size = max(320, 140 + cell * n)
    return {
        "data": [{
            "type": "heatmap", "z": good, "x": classes, "y": classes, "text": text, "customdata": hover,
            "texttemplate": "%{text}", "textfont": {"size": 10 if n <= 20 else 8},
            "hovertemplate": "%{customdata}<extra></extra>", "zmin": -top, "zmax": top, "zmid": 0,
            "colorscale": [[0, "#c92a2a"], [0.5, "#ffffff"], [1, "#2b8a3e"]], "xgap": 1, "ygap": 1,
            "colorbar": {"title": {"text": "better →", "side": "right"}, "thickness": 12, "tickvals": []},
        }],
        "layout": {
            "font": FONT, "height": size, "margin": {"l": 140, "r": 40, "t": 20, "b": 110},
            "xaxis": {"title": {"text": "predicted"}, "tickangle": -50, "side": "bottom", "automargin": True},
            "yaxis": {"title": {"text": "target"}, "autorange": "reversed", "automargin": True},
            "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
        },
    }


def _complete_runs(session) -> list[dict]:
    rows = session.query(Run.id, Run.name, Run.parent_run_id, Dataset.name).join(Dataset, Dataset.id == Run.dataset_id) \
        .filter(Run.status == "complete").order_by(Run.id.desc()).limit(500).all()
    return [dict(id=i, name=n, parent_run_id=p, dataset=d) for i, n, p, d in rows]


@router.get("/compare", summary="Compare two runs of one data set")
def show_compare(request: Request, session: SessionDep, current: OptionalRunDep, a: RunQ = None, b: RunQ = None,
                 split: SplitQ = None, kind: KindQ = "fixed", page: Annotated[int, Query(ge=1, le=100_000)] = 1):
    """The compare page (see the module doc for the defaults)."""
    runs = _complete_runs(session)
    explicit = bool(a or b)
    if not b and not a and current is not None and current.status == "complete":
        b = str(current.id)
    try:
        run_a, run_b = cmp.pick_runs(session, a, b)
    except EarmarkError as exc:
        if explicit:
            raise
        return render(request, "compare.html", run=current, problem=exc, complete_runs=runs, result=None)
    result = cmp.compare_runs(session, run_a, run_b)
    splits = list(result["splits"])
    if split is None or split not in result["splits"]:
        split = "test" if "test" in splits else (splits[-1] if splits else None)
    sp = result["splits"].get(split) if split else None
    changes, total = cmp.changed_clips(session, run_a, run_b, kind, split, limit=PAGE_SIZE,
                                       offset=(page - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    figure = confusion_diff_figure(result["classes"], sp["confusion_diff"], sp["confusion_a"], sp["confusion_b"]) \
        if sp else None
    return render(request, "compare.html", run=run_b, run_a=run_a, run_b=run_b, result=result, split=split,
                  sp=sp, kind=kind, changes=changes, total=total, page=page, pages=pages, figure=figure,
                  complete_runs=runs, problem=None)


@router.get("/api/compare", summary="Compare two runs (every split) as JSON")
def api_compare(session: SessionDep, a: RunQ = None, b: RunQ = None) -> dict:
    """Per split: metrics of a and b with deltas, per-class rows, confusion matrices and their difference,
    same-target vs relabeled accuracy, and the counts of fixed and broken clips."""
    run_a, run_b = cmp.pick_runs(session, a, b)
    return cmp.compare_runs(session, run_a, run_b)


@router.get("/api/compare/changes", summary="Clips whose prediction changed between two runs")
def api_compare_changes(session: SessionDep, a: RunQ = None, b: RunQ = None, kind: KindQ = "fixed",
                        split: SplitQ = None, limit: Annotated[int, Query(ge=1, le=5000)] = PAGE_SIZE,
                        offset: Annotated[int, Query(ge=0)] = 0) -> dict:
    """``{total, clips: [...]}``, ordered by clip path; ``relabeled`` marks clips whose target changed."""
    run_a, run_b = cmp.pick_runs(session, a, b)
    clips, total = cmp.changed_clips(session, run_a, run_b, kind, split, limit=limit, offset=offset)
    return {"a": run_a.id, "b": run_b.id, "kind": kind, "split": split, "total": total, "clips": clips}
