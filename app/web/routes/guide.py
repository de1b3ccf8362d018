"""``/guide``: the user guide inside the app: what each page shows, how to flag, the keyboard, and
what every score means and how it is computed.

The numbers the guide quotes (thresholds, weights) are read from ``ml.analysis`` here, so the page
says what the detectors do, not what they once did. Pages link each score to its entry
(``templates/_help.html``: ``/guide#cutoff-score`` and so on).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.web.deps import render
from ml.analysis import cutoff, describe, label_issues, neighbors

router = APIRouter(include_in_schema=False)
NAV = ("Guide", "/guide", 85)


def guide_numbers() -> dict:
    """The detector settings the guide quotes."""
    return dict(cutoff_threshold=cutoff.CUTOFF_THRESHOLD, signal_weight=cutoff.SIGNAL_WEIGHT,
                model_weight=round(cutoff.MODEL_WEIGHT, 2), end_db_mid=cutoff.END_DB_MID,
                min_word_ms=cutoff.MIN_WORD_MS, outlier_z=neighbors.OUTLIER_Z, outlier_z_min=describe.OUTLIER_Z_MIN,
                max_outliers=describe.MAX_OUTLIERS, duplicate_sim=neighbors.DUPLICATE_SIM,
                min_majority=label_issues.MIN_MAJORITY, model_share=label_issues.MODEL_SHARE,
                max_given_prob=label_issues.MAX_GIVEN_PROB, min_other_prob=label_issues.MIN_OTHER_PROB)


@router.get("/guide")
def show_guide(request: Request):
    """The user guide page."""
    return render(request, "guide.html", n=guide_numbers())
