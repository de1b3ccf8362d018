"""Comparing two runs of the same data set (pure reads; the compare page, its API and the CLI use it).

Run ``a`` is the baseline, ``b`` the newer run. Per split:

- per-class precision, recall and F1 of both runs, aligned by class name (``b`` may add classes,
  such as ``_cutoff_``), with ``b - a`` deltas;
- both confusion matrices re-indexed to the aligned classes, and their difference ``b - a``;
- accuracy on the clips whose target is the same in both runs, reported apart from accuracy on
  the clips whose target differs (relabeled by flags), because accuracy measured against changed
  labels can rise from the relabeling alone;
- the clips whose prediction changed: *fixed* (wrong in a, right in b) and *broke* (right in a,
  wrong in b), among the clips whose target is the same in both runs (a relabeled clip that b
  predicts as its new label was not fixed: its label was), and the confusion matrices of those
  same-target clips, whose difference shows what the model changed, not what the flags did.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import Conflict, EarmarkError
from app.store import comparisons
from app.store.models import Run
from app.store.runs import get_run, resolve_run

SPLIT_ORDER = ("train", "validation", "test")


CHANGE_KINDS = ("fixed", "broke")


def _complete(run: Run) -> Run:
    if run.status != "complete":
        raise Conflict(f"run {run.id} ({run.name}) is {run.status}, not complete",
                       hint="compare runs whose inference finished; `earmark infer --run ID` completes one")
    return run


def pick_runs(session: Session, a: str | int | None = None, b: str | int | None = None) -> tuple[Run, Run]:
    """The pair to compare: both given, or defaults.

    Without either: ``b`` is the newest complete run. Only ``a``: ``b`` is the newest other complete run
    of ``a``'s data set. Without ``a``: ``b``'s parent run when it has one (the
    run whose flags it was retrained from), else the newest complete run of the same data set
    before ``b``.
    """
    if b in (None, "") and a not in (None, ""):
        # Only a: the newest other complete run of a's data set.
        run_a = _complete(resolve_run(session, a))
        run_b = comparisons.newest_complete_run(session, run_a.dataset_id, exclude_id=run_a.id)
        if run_b is None:
            raise EarmarkError(f"run {run_a.id} ({run_a.name}) is the only complete run of its data set",
                               status=404, hint="train another run of that data set to compare with")
        return run_a, run_b
    if b in (None, ""):
        run_b = comparisons.newest_complete_run(session)
        if run_b is None:
            raise EarmarkError("there are no complete runs to compare", status=404,
                               hint="train and infer two runs of one data set first")
    else:
        run_b = _complete(resolve_run(session, b))
    if a in (None, ""):
        run_a = get_run(session, run_b.parent_run_id) if run_b.parent_run_id else None
        if run_a is None or run_a.status != "complete":
            run_a = comparisons.newest_complete_run(session, run_b.dataset_id, before_id=run_b.id)
        if run_a is None:
            raise EarmarkError(f"run {run_b.id} ({run_b.name}) has no earlier complete run of its data set to "
                               "compare with", status=404,
                               hint="retrain with `earmark train --apply-flags`, or name both runs")
    else:
        run_a = _complete(resolve_run(session, a))
    if run_a.dataset_id != run_b.dataset_id:
        raise EarmarkError(f"runs {run_a.id} and {run_b.id} belong to different data sets", status=422,
                           hint="compare two runs of the same data set")
    if run_a.id == run_b.id:
        raise EarmarkError(f"run {run_a.id} compared with itself", status=422, hint="pick two different runs")
    return run_a, run_b


def _run_info(run: Run) -> dict:
    return {"id": run.id, "name": run.name, "model": run.model, "classes": list(run.classes or []),
            "parent_run_id": run.parent_run_id, "n_flags_used": len(run.flags_used or []),
            "cutoff_policy": (run.config or {}).get("cutoff_policy"),
            "created_at": run.created_at.isoformat() if run.created_at else None}


def align_classes(a: list[str], b: list[str]) -> list[str]:
    """``a``'s classes in order, then the classes only ``b`` has."""
    seen = set(a)
    return list(a) + [c for c in b if c not in seen]


def _reindex(cm: list[list[int]] | None, classes: list[str], aligned: list[str]) -> list[list[int]]:
    pos = {c: i for i, c in enumerate(classes)}
    out = [[0] * len(aligned) for _ in aligned]
    if not cm:
        return out
    for i, ci in enumerate(aligned):
        if ci not in pos:
            continue
        row = cm[pos[ci]]
        for j, cj in enumerate(aligned):
            if cj in pos:
                out[i][j] = int(row[pos[cj]])
    return out


def _delta(x: float | None, y: float | None) -> float | None:
    return None if x is None or y is None else y - x


def _agreement(session: Session, a: Run, b: Run) -> dict[str, dict]:
    """Per split: counts and accuracies on same-target and relabeled clips, fixed/broke counts."""
    out: dict[str, dict] = {}
    for split, is_same, n, ok_a, ok_b, fixed, broke in comparisons.agreement_counts(session, a.id, b.id):
        d = out.setdefault(split, {"same_target": _acc(0, 0, 0), "relabeled": _acc(0, 0, 0),
                                   "fixed": 0, "broke": 0})
        d["same_target" if is_same else "relabeled"] = _acc(int(n), int(ok_a or 0), int(ok_b or 0))
        d["fixed"] += int(fixed or 0)
        d["broke"] += int(broke or 0)
    for run, key in ((a, "only_a"), (b, "only_b")):
        for split, n in comparisons.predictions_per_split(session, run.id).items():
            d = out.setdefault(split, {"same_target": _acc(0, 0, 0), "relabeled": _acc(0, 0, 0),
                                       "fixed": 0, "broke": 0})
            d[key] = int(n) - d["same_target"]["n"] - d["relabeled"]["n"]
    return out


def _same_target_confusions(session: Session, a: Run, b: Run, aligned: list[str]) -> dict[str, tuple]:
    """Per split: (a's, b's) confusion counts over the clips whose target is the same in both runs,
    in ``aligned`` order, so that relabeling moves nothing between rows of their difference."""
    pos = {c: i for i, c in enumerate(aligned)}
    out: dict[str, tuple] = {}
    for split, target, pred_a, pred_b, n in comparisons.same_target_pairs(session, a.id, b.id):
        if target not in pos:
            continue
        cma, cmb = out.setdefault(split, ([[0] * len(aligned) for _ in aligned], [[0] * len(aligned) for _ in aligned]))
        if pred_a in pos:
            cma[pos[target]][pos[pred_a]] += int(n)
        if pred_b in pos:
            cmb[pos[target]][pos[pred_b]] += int(n)
    return out


def _acc(n: int, ok_a: int, ok_b: int) -> dict:
    return {"n": n, "a_correct": ok_a, "b_correct": ok_b, "a_accuracy": ok_a / n if n else None,
            "b_accuracy": ok_b / n if n else None, "delta": (ok_b - ok_a) / n if n else None}


def compare_runs(session: Session, a: Run, b: Run) -> dict:
    """Everything the compare page shows for runs ``a`` (baseline) and ``b`` (see the module doc)."""
    aligned = align_classes(list(a.classes or []), list(b.classes or []))
    agreement = _agreement(session, a, b)
    same_cms = _same_target_confusions(session, a, b, aligned)
    splits = [s for s in SPLIT_ORDER if s in (a.metrics or {}) or s in (b.metrics or {}) or s in agreement]
    out = {"a": _run_info(a), "b": _run_info(b), "classes": aligned, "splits": {}}
    for split in splits:
        ma, mb = (a.metrics or {}).get(split, {}), (b.metrics or {}).get(split, {})
        pca, pcb = ma.get("per_class", {}), mb.get("per_class", {})
        rows = []
        for c in aligned:
            ra, rb = pca.get(c), pcb.get(c)
            rows.append({"class": c, "a": ra, "b": rb,
                         "delta": {k: _delta((ra or {}).get(k), (rb or {}).get(k)) for k in ("precision", "recall", "f1")}})
        cma = _reindex(ma.get("confusion"), list(a.classes or []), aligned)
        cmb = _reindex(mb.get("confusion"), list(b.classes or []), aligned)
        diff = [[y - x for x, y in zip(ra_, rb_, strict=True)] for ra_, rb_ in zip(cma, cmb, strict=True)]
        sa, sb = same_cms.get(split, ([[0] * len(aligned) for _ in aligned],) * 2)
        same_diff = [[y - x for x, y in zip(ra_, rb_, strict=True)] for ra_, rb_ in zip(sa, sb, strict=True)]
        ag = agreement.get(split, {"same_target": _acc(0, 0, 0), "relabeled": _acc(0, 0, 0), "fixed": 0, "broke": 0})
        ag.setdefault("only_a", 0)
        ag.setdefault("only_b", 0)
        out["splits"][split] = {
            "a": {"accuracy": ma.get("accuracy"), "macro_f1": ma.get("macro_f1")},
            "b": {"accuracy": mb.get("accuracy"), "macro_f1": mb.get("macro_f1")},
            "delta": {"accuracy": _delta(ma.get("accuracy"), mb.get("accuracy")),
                      "macro_f1": _delta(ma.get("macro_f1"), mb.get("macro_f1"))},
            "per_class": rows, "confusion_a": cma, "confusion_b": cmb, "confusion_diff": diff,
            "same_target_confusion_a": sa, "same_target_confusion_b": sb, "same_target_confusion_diff": same_diff,
            "agreement": ag,
        }
    return out


def changed_clips(session: Session, a: Run, b: Run, kind: str = "fixed", split: str | None = None,
                  limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """The clips ``b`` fixed or broke relative to ``a``, by clip path; returns ``(page, total)``."""
    if kind not in CHANGE_KINDS:
        raise EarmarkError(f"unknown change kind {kind!r}", hint="use fixed or broke", status=422)
    return comparisons.changed_clip_rows(session, a.id, b.id, kind == "fixed", split, limit, offset)
