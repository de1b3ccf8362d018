"""``/guide``: the user guide inside the app: what each page shows, how to flag, the keyboard, and
what every score means, how it is computed and how good it is on real speech.

The numbers the guide quotes (thresholds, weights) are read from ``ml.analysis`` here, so the page
says what the detectors do, not what they once did; the measured figures come from ``app.measured``
(their one home, checked against ``docs/benchmarks.md``). Pages link each score to its entry with a
tooltip (``templates/_help.html``: ``/guide#cutoff-score`` and so on).
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request

from app.measured import QUALITY_TERMS
from app.store.neighbors import N_NEIGHBORS
from app.web.deps import render
from ml.analysis import clusters, cutoff, describe, label_issues, neighbors, quality

router = APIRouter(include_in_schema=False)
NAV = ("Guide", "/guide", 85)


def guide_numbers() -> dict:
    """The detector settings the guide quotes."""
    return dict(cutoff_threshold=cutoff.CUTOFF_THRESHOLD, signal_weight=cutoff.SIGNAL_WEIGHT,
                model_weight=round(cutoff.MODEL_WEIGHT, 2), end_db_mid=cutoff.END_DB_MID,
                end_without_indicator=cutoff.END_WITHOUT_INDICATOR, start_evidence=cutoff.START_EVIDENCE,
                start_model_min=round(cutoff.CUTOFF_THRESHOLD / cutoff.START_EVIDENCE - cutoff.SIGNAL_WEIGHT, 4)
                / cutoff.MODEL_WEIGHT,
                trail_ms_full=cutoff.TRAIL_MS_FULL, trail_ms_zero=cutoff.TRAIL_MS_ZERO,
                min_word_ms=cutoff.MIN_WORD_MS, outlier_z=neighbors.OUTLIER_Z, outlier_z_min=describe.OUTLIER_Z_MIN,
                outlier_min_score=1 - math.exp(-describe.OUTLIER_Z_MIN / neighbors.OUTLIER_Z),
                max_outliers=describe.MAX_OUTLIERS, duplicate_sim=neighbors.DUPLICATE_SIM, k=N_NEIGHBORS,
                min_majority=label_issues.MIN_MAJORITY, model_share=label_issues.MODEL_SHARE,
                max_given_prob=label_issues.MAX_GIVEN_PROB, min_other_prob=label_issues.MIN_OTHER_PROB,
                pca_dims=clusters.PCA_DIMS, cluster_signal_weight=clusters.SIGNAL_WEIGHT,
                cluster_cutoff_weight=clusters.CUTOFF_WEIGHT, min_disagree=clusters.MIN_DISAGREE_RATE,
                min_lift=clusters.MIN_LIFT, min_judged=clusters.MIN_JUDGED,
                max_clusters=describe.MAX_CLUSTER_FINDINGS, cutoff_share=describe.CUTOFF_SHARE,
                mislabel_share=describe.MISLABEL_SHARE,
                clipped_min_share=quality.CLIPPED_MIN_SHARE,
                clipped_min_peak_db=20 * math.log10(quality.CLIPPED_MIN_PEAK),
                silent_peak_dbfs=quality.SILENT_PEAK_DBFS, quiet_peak_dbfs=quality.QUIET_PEAK_DBFS,
                dc_max=quality.DC_MAX, upsampled_step_db=quality.UPSAMPLED_STEP_DB,
                band_below=quality.BAND_BELOW_HZ, band_above=quality.BAND_ABOVE_HZ)


@router.get("/guide")
def show_guide(request: Request):
    """The user guide page."""
    return render(request, "guide.html", n=guide_numbers(), quality_terms=QUALITY_TERMS)
