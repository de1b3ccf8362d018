"""ml.analysis.slices on arrays: the Wilson interval, quantile bins, top values + other + missing,
worst-first ranking, small slices marked (never dropped), the per-class table and confused pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from ml.analysis.slices import (
    MISSING,
    OTHER,
    SliceColumn,
    number_codes,
    per_class,
    quantile_edges,
    slice_family,
    slice_report,
    text_codes,
    top_confused,
    wilson,
)


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(5, 10), (0, 10), (10, 10), (1, 3), (37, 1000)])
def test_wilson_matches_the_formula(k, n):
    lo, hi = wilson(k, n)
    want = _wilson_by_hand(k, n)
    assert float(lo) == pytest.approx(max(0.0, want[0]), abs=1e-12)
    assert float(hi) == pytest.approx(min(1.0, want[1]), abs=1e-12)


def test_wilson_known_values_and_empty():
    lo, hi = wilson(np.array([5, 0, 0]), np.array([10, 10, 0]))
    assert lo[0] == pytest.approx(0.2366, abs=1e-4) and hi[0] == pytest.approx(0.7634, abs=1e-4)
    assert lo[1] == 0.0 and hi[1] == pytest.approx(0.2775, abs=1e-4)  # never a zero-width interval at 0/n
    assert (lo[2], hi[2]) == (0.0, 1.0)  # nothing known about an empty slice


def test_quantile_bins_split_evenly_and_keep_missing_apart():
    x = np.r_[np.arange(100, dtype=float), np.nan, np.nan]
    codes, names, selects = number_codes(x, 5)
    assert np.bincount(codes).tolist() == [20, 20, 20, 20, 20, 2]
    assert names[-1] == MISSING and selects[-1] == {"missing": True}
    assert selects[0] == {"min": None, "below": 19.8} and selects[4] == {"min": 79.2, "below": None}
    # each bin is [min, below): a value on an edge belongs to the bin above
    assert codes[np.searchsorted(x[:100], 79.2)] == 4 and names[0].startswith("<")


def test_quantile_edges_collapse_repeated_values():
    assert quantile_edges(np.array([0.0] * 50 + [1.0] * 50)).tolist() == [1.0]
    assert quantile_edges(np.array([3.0] * 10)).tolist() == []  # a constant column: one bin
    codes, names, _ = number_codes(np.array([3.0] * 10))
    assert names == ["all"] and set(codes.tolist()) == {0}


def test_text_codes_top_values_then_other_then_missing():
    values = np.array(["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"] + [None] * 3, dtype=object)
    codes, names, selects = text_codes(values, top_n=2)
    assert names == ["a", "b", OTHER, MISSING]
    assert np.bincount(codes).tolist() == [5, 4, 3, 3]
    assert selects[2] == {"not": ["a", "b"]} and selects[3] == {"missing": True}


def test_text_codes_rank_by_errors_picks_the_worst_speakers():
    values = np.array(["many"] * 20 + ["bad"] * 4, dtype=object)
    wrong = np.r_[np.zeros(20), np.ones(4)]
    _, names, _ = text_codes(values, top_n=1, weights=wrong)
    assert names == ["bad", OTHER]


def test_worst_first_ranks_sure_excess_above_a_lucky_small_slice_and_marks_small():
    # one slice of 400 clips at 20% error, a 2-clip slice with its 2 errors (its Wilson interval starts
    # higher than the big one's), the rest clean
    n_big, n_tiny = 400, 2
    group = np.array(["big"] * n_big + ["tiny"] * n_tiny + ["rest"] * 198, dtype=object)
    correct = np.ones(600, bool)
    correct[:80] = False  # 80 of the big slice's 400 wrong (20%)
    correct[n_big:n_big + n_tiny] = False
    loss = np.where(correct, 0.1, 2.0)
    col = SliceColumn("meta.g", "g", "text", group)
    run_error = 1 - correct.mean()
    slices = slice_family(col, correct, loss, None, run_error)
    assert [s.name for s in slices][:2] == ["big", "tiny"]
    big, tiny = slices[0], slices[1]
    assert big.n == 400 and big.errors == 80 and big.accuracy == pytest.approx(0.8)
    assert big.excludes_run and not big.small and big.gap == pytest.approx(0.2 - run_error)
    assert tiny.small and tiny.error_rate == 1.0 and tiny.ci_low > big.ci_low  # surer per clip, far fewer errors
    assert big.mean_loss == pytest.approx((80 * 2.0 + 320 * 0.1) / 400)
    rest = slices[2]
    assert rest.errors == 0 and rest.excludes_run and rest.gap < 0  # surely better: last
    assert sum(s.n for s in slices) == 600  # nothing hidden


def test_slice_report_numbers_and_disagreement():
    rng = np.random.default_rng(0)
    n = 1000
    correct = rng.random(n) > 0.2
    doubted = ~correct & (rng.random(n) > 0.5)
    loss = rng.random(n).astype(np.float32)
    loss[:10] = np.nan  # an imported run without a loss for some clips
    cols = [SliceColumn("stat.x", "x", "number", rng.normal(size=n)),
            SliceColumn("meta.flag", "flag", "boolean", np.array([bool(i % 2) for i in range(n)], dtype=object))]
    rep = slice_report(cols, correct, loss, doubted)
    assert rep.n == n and rep.errors == int((~correct).sum())
    assert rep.disagreement == pytest.approx(doubted.mean())
    flag = rep.families[1]["slices"]
    assert {s.name for s in flag} == {"true", "false"}
    for s in flag:
        sel = np.array([bool(i % 2) for i in range(n)]) == (s.name == "true")
        assert s.disagreement == pytest.approx(doubted[sel].mean())
        assert s.mean_loss == pytest.approx(np.nanmean(loss[sel]), rel=1e-5)
    assert sum(s.n for s in rep.families[0]["slices"]) == n


def test_per_class_matches_sklearn_and_confused_pairs_count():
    rng = np.random.default_rng(1)
    names = ["a", "b", "c", "d"]
    target = rng.integers(0, 3, 500)  # "d" never a target ...
    pred = np.where(rng.random(500) < 0.7, target, rng.integers(0, 4, 500))  # ... but sometimes predicted
    rows = {r["label"]: r for r in per_class(target, pred, names)}
    p, r, f, s = precision_recall_fscore_support(target, pred, labels=[0, 1, 2, 3], zero_division=0)
    for i, name in enumerate(names):
        assert rows[name]["precision"] == pytest.approx(p[i], abs=1e-4)
        assert rows[name]["recall"] == pytest.approx(r[i], abs=1e-4)
        assert rows[name]["f1"] == pytest.approx(f[i], abs=1e-4)
        assert rows[name]["support"] == s[i]
    pairs = top_confused(target, pred, names, limit=3)
    want = sorted(((int(((target == t) & (pred == q)).sum()), t, q) for t in range(3) for q in range(4) if t != q),
                  reverse=True)[:3]
    assert [p["count"] for p in pairs] == [w[0] for w in want]
    assert all(p["label"] != p["pred"] for p in pairs)
    top = pairs[0]
    assert top["share"] == pytest.approx(top["count"] / (target == names.index(top["label"])).sum(), abs=1e-4)
