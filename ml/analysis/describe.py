"""Plain-words descriptions of a group of clips (an error cluster) and the flag reason they suggest.

A description names the group's size and disagreement rate, its dominant labels and predictions,
and the signal stats that set it apart from the whole run, e.g. "1,204 clips, 78% disagree with
their label, energy still high at the end -> likely cut off".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

# Signal stats worth describing: column -> (words when the group is higher, words when lower, unit).
SIGNAL_WORDS = {
    "end_energy_db": ("energy still high at the end", "quiet at the end", "dB"),
    "trail_silence_ms": ("long silence after the word", "no silence after the word", "ms"),
    "lead_silence_ms": ("late start of the word", "sound from the very start", "ms"),
    "rms_dbfs": ("louder than usual", "quieter than usual", "dBFS"),
}
# How far (in units of the run's interquartile range) a group median must sit from the run's median.
NOTABLE_SHIFT = 0.75
CUTOFF_SHARE = 0.5  # share of clips above the cut-off threshold that makes a group "likely cut off"
MISLABEL_SHARE = 0.5  # share of label issues that makes a group "likely mislabeled"
NOISE_EDGE_MS = 50.0  # median leading and trailing silence below this: sound throughout -> noise only
MOSTLY_SHARE = 0.5  # a title says "mostly 'w'" only when at least this share of the clips it speaks of is 'w'


@dataclass
class Description:
    """What a group of clips looks like, and what to do about it."""

    title: str
    text: str
    reason: str | None  # a flag reason, or None when the evidence points nowhere in particular
    suggested_label: str | None
    stats: dict = field(default_factory=dict)


def _top(values: np.ndarray, k: int = 3) -> list[tuple[str, float]]:
    counts = Counter(values.tolist())
    total = max(1, len(values))
    return [(str(v), c / total) for v, c in counts.most_common(k)]


def _fmt_top(items: list[tuple[str, float]]) -> str:
    return ", ".join(f"'{v}' ({share:.0%})" for v, share in items if share >= 0.05) or "mixed"


def _mostly(values: np.ndarray, other: str) -> tuple[str, str | None]:
    """("'w'", w) when one word ``w`` holds at least ``MOSTLY_SHARE`` of ``values``, else (``other``, None)."""
    top = _top(values, 1)
    if top and top[0][1] >= MOSTLY_SHARE:
        return f"'{top[0][0]}'", top[0][0]
    return other, None


def error_words(members: np.ndarray, labels: np.ndarray, preds: np.ndarray, agree: np.ndarray,
                what: str | None = None) -> str:
    """What a group's errors are, in words: "mostly 'six' predicted as 'two'", "various words predicted
    as 'two'". Taken over the members that disagree (all members when none does), so it never names one
    word as both the label and the prediction of a group that disagrees: a label and a prediction that
    are each only the most common of many, over all the members, may be the same word on different clips
    (a cluster of silent clips filed under 40 words, which the model calls 'two'). When no word holds
    half of either side, ``what`` (what sets the clips apart, e.g. "quieter than usual") says what they are."""
    wrong = members[~agree[members].astype(bool)]
    pick = wrong if wrong.size else members
    label, lw = _mostly(labels[pick], "various words")
    pred, pw = _mostly(preds[pick], "various words")
    if lw is None and pw is None and what:
        return f"various words, {what}"
    if lw is not None and lw == pw:  # all agree, or exactly half are filed as 'w' and half predicted 'w'
        return f"mostly '{lw}', predicted as such" if not wrong.size else f"'{lw}' confused with other words"
    return f"{'mostly ' if lw is not None else ''}{label} predicted as {pred}"


def signal_shifts(members: np.ndarray, signal: dict[str, np.ndarray]) -> list[tuple[str, float, float, float]]:
    """(column, group median, run median, shift in IQR units) for each notable signal stat, largest first."""
    out = []
    for col, values in signal.items():
        if col not in SIGNAL_WORDS or values.size == 0:
            continue
        v = np.asarray(values, dtype=np.float64)
        q1, med, q3 = np.percentile(v, [25, 50, 75])
        spread = max(q3 - q1, 1e-6 + 0.05 * abs(med), 1.0)
        g = float(np.median(v[members]))
        shift = (g - med) / spread
        if abs(shift) >= NOTABLE_SHIFT:
            out.append((col, g, float(med), float(shift)))
    out.sort(key=lambda t: -abs(t[3]))
    return out


def _throughout(members: np.ndarray, signal: dict[str, np.ndarray]) -> np.ndarray:
    """Per member: (almost) no silence at either edge, i.e. steady sound rather than a word (bool)."""
    lead, trail = signal.get("lead_silence_ms"), signal.get("trail_silence_ms")
    if lead is None or trail is None:
        return np.zeros(members.size, dtype=bool)
    return (lead[members] < NOISE_EDGE_MS) & (trail[members] < NOISE_EDGE_MS)


def describe_group(members: np.ndarray, labels: np.ndarray, preds: np.ndarray, agree: np.ndarray,
                   signal: dict[str, np.ndarray], cutoff_score: np.ndarray, cutoff_threshold: float,
                   label_issue: np.ndarray, suggested: np.ndarray) -> Description:
    """Describe the clips at row indices ``members``; every other argument is per clip of the run (n,)."""
    n = int(members.size)
    dis = 1.0 - float(np.mean(agree[members])) if n else 0.0
    top_labels = _top(labels[members])
    top_preds = _top(preds[members])
    shifts = signal_shifts(members, signal)
    cut_share = float(np.mean(cutoff_score[members] >= cutoff_threshold)) if n else 0.0
    issue_share = float(np.mean(label_issue[members])) if n else 0.0

    parts = [f"{n:,} clips", f"{dis:.0%} disagree with their label"]
    parts += [(SIGNAL_WORDS[c][0] if s > 0 else SIGNAL_WORDS[c][1])
              + f" (median {g:.0f} {SIGNAL_WORDS[c][2]} vs {m:.0f} overall)" for c, g, m, s in shifts[:2]]
    reason, suggestion, verdict = None, None, ""
    end_high = any(c == "end_energy_db" and s > 0 for c, _, _, s in shifts)
    # Steady noise also has sound in its last 50 ms. A group most of whose clips have sound at both
    # edges is noise, even when some cut words (which start quiet) were clustered with it.
    steady = _throughout(members, signal)
    noise_share = float(steady.mean()) if n else 0.0
    if noise_share > 0.5:
        reason = "noise_only"
        verdict = (f"{noise_share:.0%} have sound from the first to the last frame with no quiet before or "
                   f"after a word: likely noise only")
        cut_rest = float(np.mean((cutoff_score[members] >= cutoff_threshold) & ~steady))
        if cut_rest >= 0.1:
            verdict += f" (and {cut_rest:.0%} look cut off)"
    elif cut_share >= CUTOFF_SHARE or (end_high and cut_share >= 0.3):
        reason, verdict = "cutoff", f"likely cut off ({cut_share:.0%} score above the cut-off threshold)"
    elif issue_share >= MISLABEL_SHARE:
        reason = "mislabeled"
        common = _top(suggested[members][label_issue[members]], 1)
        suggestion = common[0][0] if common and common[0][1] >= 0.6 else None
        verdict = f"likely mislabeled ({issue_share:.0%} are label issues" + (
            f", most look like '{suggestion}')" if suggestion else ")")
    text = ", ".join(parts)
    text += f". Filed as {_fmt_top(top_labels)}; predicted {_fmt_top(top_preds)}."
    if verdict:
        text += f" \u2192 {verdict}."
    what = (SIGNAL_WORDS[shifts[0][0]][0 if shifts[0][3] > 0 else 1]) if shifts else None
    title = f"{n:,} clips, {dis:.0%} disagree: {error_words(members, labels, preds, agree, what)}"
    if reason == "cutoff":
        label, lw = _mostly(labels[members], "various words")
        title = f"{n:,} clips, {dis:.0%} disagree, likely cut off ({'mostly ' if lw is not None else ''}{label})"
    elif reason == "noise_only":
        title = f"{n:,} clips, {dis:.0%} disagree, likely noise only"
    stats = {
        "n": n, "disagree_rate": round(dis, 4), "cutoff_share": round(cut_share, 4),
        "label_issue_share": round(issue_share, 4), "noise_share": round(noise_share, 4),
        "top_labels": [[v, round(s, 4)] for v, s in top_labels],
        "top_predictions": [[v, round(s, 4)] for v, s in top_preds],
        "signal": {c: {"median": round(g, 2), "overall_median": round(m, 2), "shift_iqr": round(s, 2)}
                   for c, g, m, s in shifts},
    }
    return Description(title, text, reason, suggestion, stats)


# ----------------------------------------------------------------------------------- findings

MAX_CLUSTER_FINDINGS = 10
CUTOFF_CLASSES = ("_cutoff_",)  # the class `earmark train --apply-flags --cutoff-policy class` files them under
MAX_OUTLIERS = 200
OUTLIER_Z_MIN = 6.0


@dataclass
class Evidence:
    """Per-clip detector outputs for one run, all indexed by row (n,), as the finding builder reads them."""

    labels: np.ndarray  # str, the label as filed (in the run's classes)
    preds: np.ndarray  # str
    agree: np.ndarray  # bool
    splits: np.ndarray  # str
    signal: dict[str, np.ndarray]
    cutoff_score: np.ndarray
    cutoff_threshold: float
    label_issue: np.ndarray  # bool
    label_quality: np.ndarray  # float, NaN where not judged
    suggested: np.ndarray  # str
    clusters: np.ndarray  # int, -1 noise
    outlier_score: np.ndarray
    outlier_z: np.ndarray
    duplicate_pairs: list  # (i, j, cosine, same_content)
    label_scope: dict = field(default_factory=dict)
    judged: np.ndarray | None = None  # bool: disagreement out of sample (held out, or out-of-fold); None: all


@dataclass
class FindingSpec:
    """One ranked finding before it is stored: ``members`` are row indices, best (worst clip) first."""

    kind: str
    score: float
    title: str
    description: str
    reason: str | None
    suggested_label: str | None
    members: np.ndarray
    clip_scores: np.ndarray
    clip_labels: list
    stats: dict


def _by_score(members: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores[members], kind="stable")
    return members[order], scores[members][order]


def cutoff_finding(ev: Evidence) -> FindingSpec | None:
    """All clips at or above the cut-off threshold, as one finding."""
    above = ev.cutoff_score >= ev.cutoff_threshold
    # After `earmark train --apply-flags --cutoff-policy class` the cut clips are filed under their own
    # class: still cut off, but no longer a problem to fix.
    handled = above & np.isin(ev.labels, CUTOFF_CLASSES)
    members = np.flatnonzero(above & ~handled)
    if members.size == 0:
        return None
    members, scores = _by_score(members, ev.cutoff_score)
    d = describe_group(members, ev.labels, ev.preds, ev.agree, ev.signal, ev.cutoff_score,
                       ev.cutoff_threshold, ev.label_issue, ev.suggested)
    share = members.size / max(1, ev.labels.size)
    text = (f"{members.size:,} clips ({share:.1%} of the run) have sound still on at the edge of the clip "
            f"(cut-off score \u2265 {ev.cutoff_threshold:g}). " + d.text)
    if handled.any():
        text += f" Not listed: {int(handled.sum()):,} more already filed under {', '.join(CUTOFF_CLASSES)}."
    return FindingSpec("cutoff", float(scores.sum()), f"{members.size:,} clips look cut off", text, "cutoff",
                       None, members, scores, [None] * members.size,
                       {**d.stats, "threshold": ev.cutoff_threshold, "mean_score": round(float(scores.mean()), 4)})


def label_finding(ev: Evidence) -> FindingSpec | None:
    """All label issues as one finding, each clip with its suggested label, worst first."""
    # A clip that looks cut off is explained by that (and is in the cut-off finding): a model that
    # hears half a word often names another one, which is no evidence of a wrong label.
    explained = ev.cutoff_score >= ev.cutoff_threshold
    members = np.flatnonzero(ev.label_issue & ~explained)
    n_explained = int((ev.label_issue & explained).sum())
    if members.size == 0:
        return None
    badness = np.nan_to_num(1.0 - ev.label_quality, nan=0.0)
    members, scores = _by_score(members, badness)
    pairs = Counter(zip(ev.labels[members].tolist(), ev.suggested[members].tolist(), strict=True))
    top = pairs.most_common(5)
    listed = "; ".join(f"'{a}' \u2192 '{b}' ({c})" for (a, b), c in top)
    scope = ev.label_scope
    text = (f"{members.size:,} clips look filed under the wrong word: out-of-sample predictions confidently "
            f"name another class (confident learning) and none of the clip's nearest clips in embedding space "
            f"shares its label. Most common: {listed}. Checked: "
            f"{scope.get('validation_test_clips', 0):,} validation/test clips"
            + (f", {scope['train_clips_with_oof']:,} training clips (out-of-fold)"
               if scope.get("train_clips_with_oof") else "")
            + (f", {scope['train_clips_by_neighbors']:,} training clips (by their neighbours' labels)"
               if scope.get("train_clips_by_neighbors") else "")
            + ".")
    if n_explained:
        text += f" Left out: {n_explained:,} more that look cut off (see the cut-off finding)."
    if scope.get("note"):
        text += f" Note: {scope['note']}."
    single = top[0][0][1] if len(pairs) == 1 else None
    return FindingSpec("label", float(scores.sum()), f"{members.size:,} clips seem mislabeled", text,
                       "mislabeled", single, members, scores, ev.suggested[members].tolist(),
                       {"pairs": [[a, b, c] for (a, b), c in pairs.most_common(50)], "scope": scope,
                        "left_out_cut_off": n_explained})


def cluster_findings(ev: Evidence) -> list[FindingSpec]:
    """The error clusters, ranked by size x disagreement rate, each described in plain words."""
    from ml.analysis.clusters import rank_clusters

    out = []
    for rank, c in enumerate(rank_clusters(ev.clusters, ~ev.agree, judged=ev.judged)[:MAX_CLUSTER_FINDINGS], start=1):
        d = describe_group(c.members, ev.labels, ev.preds, ev.agree, ev.signal, ev.cutoff_score,
                           ev.cutoff_threshold, ev.label_issue, ev.suggested)
        if d.reason == "cutoff":
            scores = ev.cutoff_score
        else:
            scores = (~ev.agree).astype(np.float32)
        members, s = _by_score(c.members, scores)
        labels = ev.suggested[members].tolist() if d.reason == "mislabeled" else [None] * members.size
        if d.reason == "mislabeled":  # only the clips cleanlab judged wrong carry a correction
            labels = [lab if ev.label_issue[i] else None for lab, i in zip(labels, members.tolist(), strict=True)]
        out.append(FindingSpec("cluster", c.score, f"Error cluster {rank}: {d.title}", d.text, d.reason,
                               d.suggested_label, members, s, labels,
                               {**d.stats, "cluster_id": c.cluster_id, "cluster_rank": rank}))
    return out


def duplicate_finding(ev: Evidence) -> FindingSpec | None:
    """Clips that are (near-)copies of another clip; cross-split copies leak between splits."""
    if not ev.duplicate_pairs:
        return None
    copies = sorted({j for _, j, _, _ in ev.duplicate_pairs})
    members = np.asarray(copies, dtype=np.int64)
    across = sum(1 for i, j, _, _ in ev.duplicate_pairs if ev.splits[i] != ev.splits[j])
    same = sum(1 for p in ev.duplicate_pairs if p[3])
    sims = {j: s for _, j, s, _ in ev.duplicate_pairs}
    scores = np.array([sims[j] for j in copies], dtype=np.float32)
    text = (f"{len(ev.duplicate_pairs):,} pairs of clips are identical or nearly so: {same:,} have identical "
            f"audio, the others near-identical embeddings with different labels or in different splits. "
            f"{across:,} pairs cross splits (leakage: the same sound is trained on and tested). "
            f"Listed: the later copy of each pair.")
    return FindingSpec("duplicate", 0.5 * len(copies), f"{len(copies):,} clips duplicate another clip", text,
                       None, None, members, scores, [None] * members.size,
                       {"pairs": len(ev.duplicate_pairs), "identical_audio": same, "across_splits": across})


def outlier_finding(ev: Evidence) -> FindingSpec | None:
    """Clips far from every other clip in embedding space (robust z of the kNN distance)."""
    members = np.flatnonzero(ev.outlier_z >= OUTLIER_Z_MIN)
    if members.size == 0:
        return None
    members, scores = _by_score(members, ev.outlier_z)
    members, scores = members[:MAX_OUTLIERS], scores[:MAX_OUTLIERS]
    d = describe_group(members, ev.labels, ev.preds, ev.agree, ev.signal, ev.cutoff_score,
                       ev.cutoff_threshold, ev.label_issue, ev.suggested)
    text = ("Clips unlike any other in embedding space (their nearest neighbours are far away): noise, "
            "several words, or an odd recording. " + d.text)
    return FindingSpec("outlier", 0.5 * members.size, f"{members.size:,} outlier clips", text, None, None,
                       members, ev.outlier_score[members], [None] * members.size, d.stats)


def build_findings(ev: Evidence) -> list[FindingSpec]:
    """Every detector's findings, ranked by score (roughly: the number of problem clips each holds)."""
    found = [cutoff_finding(ev), label_finding(ev), *cluster_findings(ev), duplicate_finding(ev),
             outlier_finding(ev)]
    found = [f for f in found if f is not None]
    found.sort(key=lambda f: -f.score)
    return found
