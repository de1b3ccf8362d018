"""Slices: how a run does on each part of its data (a metadata value, a speaker, a loudness bin, ...).

Pure numpy over per-clip arrays: the caller passes, for the clips of one run, whether each was
predicted right, its loss, whether the analysis doubts its label, and the columns to slice by.
A text or boolean column gives one slice per value (the ``top_n`` most common, then "other"); a number
column gives quantile bins, each ``[min, below)`` (the first open below, the last open above). Clips
with no value form a "(missing)" slice.

Each slice gets its count, accuracy, mean loss, disagreement rate (the share of its clips whose
label the analysis doubts) and its error rate's gap to the whole run, with a Wilson 95% interval
on the slice's error rate; ``excludes_run`` says the interval leaves out the run's own rate. Slices
are ranked worst first: those surely worse than the run first, by how many errors they hold beyond
the run's rate even at their interval's lower end (``badness``), so a 1-clip slice with its one
error does not outrank 500 clips at twice the run's error rate; then the unsure ones, then the
surely better. Slices under ``small_n`` clips are marked ``small``, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Z95 = 1.959963984540054  # two-sided 95% normal quantile
SMALL_N = 30  # a slice with fewer clips is marked small
TOP_N = 12  # values of a text column shown one by one; the rest are "other"
N_BINS = 5  # quantile bins of a number column
MISSING = "(missing)"
OTHER = "other"


@dataclass
class SliceColumn:
    """One column to slice by, aligned with the clips.

    ``kind`` is "text", "boolean" or "number". ``values`` is an object array for text/boolean (None =
    missing) and float for number (NaN = missing). ``rank_by_errors`` ranks a text column's values by
    their error count instead of their clip count (speakers: the top speakers by errors).
    """

    family: str  # what the API and the page call it, e.g. "meta.gender", "stat.rms_dbfs", "speaker"
    title: str  # shown to people, e.g. "gender", "loudness (dBFS)"
    kind: str
    values: np.ndarray  # a text column may pass its ``factorize``d codes (int, -1 = missing) with ``names``
    rank_by_errors: bool = False
    unit: str = ""
    names: list[str] | None = None  # set when ``values`` are codes into it


def value_key(v) -> str:
    """How a text or boolean value is named in slices and URLs: booleans "true" / "false", else str."""
    return ("true" if v else "false") if isinstance(v, bool | np.bool_) else str(v)


def factorize(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(int64 code per value, -1 for None; the distinct ``value_key``s in first-seen order): one
    pass with a dict, so later slicing and filtering is integer work (an object array sorts value by
    value: about 1 s at 105k on this box, against 40 ms for this)."""
    index: dict[str, int] = {}
    codes = np.fromiter((-1 if v is None else index.setdefault(value_key(v), len(index)) for v in values),
                        dtype=np.int64, count=len(values))
    return codes, list(index)


@dataclass
class Slice:
    """One slice's numbers. ``select`` says which clips it holds, for the clip list: ``{"value": v}``,
    ``{"not": [v, ...]}`` (the "other" slice), ``{"missing": True}`` or ``{"min": a, "below": b}``
    (either end may be None)."""

    family: str
    name: str
    n: int
    errors: int
    accuracy: float
    mean_loss: float | None  # over the clips with a loss (None: none has one)
    disagreement: float | None
    error_rate: float
    gap: float  # error_rate - the run's error rate
    ci_low: float  # Wilson 95% interval of the error rate
    ci_high: float
    excludes_run: bool
    small: bool
    select: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The slice as plain data (floats rounded to 4 places)."""
        out = dict(self.__dict__)
        for key in ("accuracy", "mean_loss", "disagreement", "error_rate", "gap", "ci_low", "ci_high"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 4)
        return out


def wilson(k: np.ndarray | int, n: np.ndarray | int, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``k / n``, elementwise; (0, 1) where ``n == 0``."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    p = k / safe
    z2 = z * z
    denom = 1.0 + z2 / safe
    centre = (p + z2 / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z2 / (4 * safe * safe)) / denom
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return lo, hi


def quantile_edges(x: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Inner bin edges of ``x`` (NaN ignored) at its quantiles, distinct and increasing; at most
    ``n_bins - 1`` of them (fewer when values repeat: a column of two values gets one edge)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return np.zeros(0)
    qs = np.quantile(x, np.linspace(0, 1, n_bins + 1)[1:-1])
    # 4 significant digits: edges a person can read and a URL can carry, the same in both
    edges = np.unique([float(f"{q:.4g}") for q in qs])
    # an edge equal to the minimum would leave the first bin empty
    return edges[edges > x.min()]


def number_codes(x: np.ndarray, n_bins: int = N_BINS) -> tuple[np.ndarray, list[str], list[dict]]:
    """(code per clip, slice names, selections) of quantile bins ``[min, below)``; NaN is "(missing)"."""
    x = np.asarray(x, dtype=np.float64)
    edges = quantile_edges(x, n_bins)
    finite = np.isfinite(x)
    codes = np.searchsorted(edges, np.where(finite, x, 0.0), side="right").astype(np.int64)
    bounds = [None, *[float(e) for e in edges], None]
    names, selects = [], []
    for i in range(len(edges) + 1):
        lo, hi = bounds[i], bounds[i + 1]
        names.append(f"< {_num(hi)}" if lo is None and hi is not None else
                     f"≥ {_num(lo)}" if hi is None and lo is not None else
                     "all" if lo is None else f"{_num(lo)} ≤ x < {_num(hi)}")
        selects.append({"min": lo, "below": hi})
    if not finite.all():
        codes[~finite] = len(names)
        names.append(MISSING)
        selects.append({"missing": True})
    return codes, names, selects


def _num(v: float | None) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if abs(v) < 10000 else f"{v:.0f}"


def text_codes(values: np.ndarray, top_n: int = TOP_N, weights: np.ndarray | None = None,
               names: list[str] | None = None) -> tuple[np.ndarray, list[str], list[dict]]:
    """(code per clip, slice names, selections): the ``top_n`` values by count (or by the sum of
    ``weights``, e.g. errors), then "other", then "(missing)" for None. ``values`` may be the codes
    of ``factorize`` with their ``names``."""
    if names is None:
        values, names = factorize(np.asarray(values, dtype=object))
    codes_in = np.asarray(values, dtype=np.int64)
    present = codes_in >= 0
    k = len(names)
    count = np.bincount(codes_in[present], minlength=k)
    score = count if weights is None else np.bincount(codes_in[present],
                                                      weights=np.asarray(weights, np.float64)[present], minlength=k)
    name_rank = np.argsort(np.argsort(np.array(names, dtype=str), kind="stable"), kind="stable")
    order = np.lexsort((name_rank, -count, -score))  # by score, then count, then name
    top = order[:top_n]
    top = top[count[top] > 0]  # values of other splits are not slices here
    remap = np.full(max(k, 1), len(top), dtype=np.int64)
    remap[top] = np.arange(len(top))
    out_names = [names[i] for i in top]
    selects: list[dict] = [{"value": n} for n in out_names]
    codes = np.full(len(codes_in), -1, dtype=np.int64)
    codes[present] = remap[codes_in[present]]
    if (count > 0).sum() > len(top):
        out_names.append(OTHER)
        selects.append({"not": list(out_names[:-1])})
    if not present.all():
        codes[~present] = len(out_names)
        out_names.append(MISSING)
        selects.append({"missing": True})
    return codes, out_names, selects


def slice_family(column: SliceColumn, correct: np.ndarray, loss: np.ndarray, doubted: np.ndarray | None,
                 run_error: float, top_n: int = TOP_N, n_bins: int = N_BINS, small_n: int = SMALL_N) -> list[Slice]:
    """The slices of one column, worst first (see the module docstring)."""
    wrong = ~np.asarray(correct, dtype=bool)
    if column.kind == "number":
        codes, names, selects = number_codes(np.asarray(column.values, dtype=np.float64), n_bins)
    else:
        codes, names, selects = text_codes(column.values, top_n, wrong.astype(np.float64) if column.rank_by_errors
                                           else None, column.names)
    k = len(names)
    n = np.bincount(codes, minlength=k)
    errors = np.bincount(codes, weights=wrong.astype(np.float64), minlength=k)
    loss = np.asarray(loss, np.float64)
    has_loss = np.isfinite(loss)  # an imported run may have no loss for some clips
    loss_sum = np.bincount(codes, weights=np.where(has_loss, loss, 0.0), minlength=k)
    loss_n = np.bincount(codes, weights=has_loss.astype(np.float64), minlength=k)
    doubt = None if doubted is None else np.bincount(codes, weights=np.asarray(doubted, np.float64), minlength=k)
    lo, hi = wilson(errors, n)
    out = []
    for i in range(k):
        if n[i] == 0:
            continue
        rate = errors[i] / n[i]
        out.append(Slice(
            family=column.family, name=names[i], n=int(n[i]), errors=int(errors[i]), accuracy=1.0 - rate,
            mean_loss=loss_sum[i] / loss_n[i] if loss_n[i] else None, disagreement=None if doubt is None else doubt[i] / n[i],
            error_rate=rate, gap=rate - run_error, ci_low=float(lo[i]), ci_high=float(hi[i]),
            excludes_run=bool(lo[i] > run_error or hi[i] < run_error), small=bool(n[i] < small_n),
            select=selects[i]))
    return worst_first(out, run_error)


def badness(n: int, ci_low: float, ci_high: float, gap: float, run_error: float) -> tuple[int, float]:
    """The sort key of ``worst_first``: (tier, -excess errors). Tier 0: surely worse than the run, by the
    errors in excess of the run's rate at the interval's lower end, ``n * (ci_low - run_error)``; tier 1:
    not sure either way, by the expected excess ``n * gap``; tier 2: surely better, least better first."""
    if ci_low > run_error:
        return 0, -n * (ci_low - run_error)
    if ci_high < run_error:
        return 2, -n * gap
    return 1, -n * gap


def worst_first(slices: list[Slice], run_error: float) -> list[Slice]:
    """Slices worst first (``badness``), then larger first, then by name."""
    return sorted(slices, key=lambda s: (*badness(s.n, s.ci_low, s.ci_high, s.gap, run_error), -s.n, s.name))


@dataclass
class SliceReport:
    """Every family's slices for one set of clips, and the run's own numbers over those clips."""

    n: int
    errors: int
    error_rate: float
    accuracy: float
    mean_loss: float | None
    disagreement: float | None
    families: list[dict]  # {family, title, kind, unit, slices: [Slice]}


def slice_report(columns: list[SliceColumn], correct: np.ndarray, loss: np.ndarray, doubted: np.ndarray | None = None,
                 top_n: int = TOP_N, n_bins: int = N_BINS, small_n: int = SMALL_N) -> SliceReport:
    """Slices of every column over the clips given (``correct``, ``loss``, ``doubted``: one entry a clip)."""
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    errors = int(n - correct.sum())
    run_error = errors / n if n else 0.0
    families = []
    for col in columns:
        families.append(dict(family=col.family, title=col.title, kind=col.kind, unit=col.unit,
                             slices=slice_family(col, correct, loss, doubted, run_error, top_n, n_bins, small_n)))
    return SliceReport(n=n, errors=errors, error_rate=run_error, accuracy=1.0 - run_error,
                       mean_loss=float(np.nanmean(loss)) if n and np.isfinite(loss).any() else None,
                       disagreement=None if doubted is None or not n else float(np.mean(doubted)),
                       families=families)


def per_class(target: np.ndarray, pred: np.ndarray, names: list[str]) -> list[dict]:
    """Precision, recall, F1 and support per class (codes index ``names``), classes with support or
    predictions only, in ``names`` order."""
    k = len(names)
    target = np.asarray(target, np.int64)
    pred = np.asarray(pred, np.int64)
    tp = np.bincount(target[target == pred], minlength=k)
    support = np.bincount(target, minlength=k)
    predicted = np.bincount(pred, minlength=k)
    out = []
    for i in range(k):
        if not support[i] and not predicted[i]:
            continue
        p = tp[i] / predicted[i] if predicted[i] else 0.0
        r = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out.append(dict(label=names[i], precision=round(float(p), 4), recall=round(float(r), 4),
                        f1=round(float(f1), 4), support=int(support[i]), predicted=int(predicted[i])))
    return out


def top_confused(target: np.ndarray, pred: np.ndarray, names: list[str], limit: int = 15) -> list[dict]:
    """The most frequent (true, predicted) pairs with true != predicted: count and share of the true class."""
    k = len(names)
    target = np.asarray(target, np.int64)
    pred = np.asarray(pred, np.int64)
    support = np.bincount(target, minlength=k)
    wrong = target != pred
    counts = np.bincount(target[wrong] * k + pred[wrong], minlength=k * k)
    top = np.argsort(-counts, kind="stable")[:limit]
    return [dict(label=names[c // k], pred=names[c % k], count=int(counts[c]),
                 share=round(float(counts[c] / max(1, support[c // k])), 4)) for c in top if counts[c] > 0]
