"""Pure figure builders: data in, plotly figure dicts out (rendered in the browser by plotly.js).

No I/O and no store access here, so each builder is easy to test.
"""

from __future__ import annotations

import math

ACCENT = "#3b5bdb"
WARN = "#e8590c"
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12, color="#1c2430")


def class_distribution(split: str, counts: dict[str, int], under: list[str]) -> dict:
    """One split's clips per label as bars; under-represented labels in orange with a marker.

    Up to 15 labels stand as columns; more lie as rows (16 px each), so every label is written out:
    35 rotated labels under 400 px of columns would make plotly drop every other one.
    """
    labels = list(counts)
    values = [counts[k] for k in labels]
    low = set(under)
    colors = [WARN if k in low else ACCENT for k in labels]
    text = ["▼ few" if k in low else "" for k in labels]
    every = {"tickmode": "array", "tickvals": labels, "ticktext": labels, "automargin": True}
    count_axis = {"title": {"text": "clips"}, "gridcolor": "#eef0f4", "rangemode": "tozero"}
    bar = {"type": "bar", "marker": {"color": colors}, "text": text, "textposition": "outside", "cliponaxis": False,
           "textfont": {"color": WARN, "size": 10}}
    layout = {"title": {"text": f"{split} · {sum(values):,} clips", "font": {"size": 14}, "x": 0.01},
              "font": FONT, "bargap": 0.2, "plot_bgcolor": "#fff", "paper_bgcolor": "#fff"}
    if len(labels) <= 15:
        bar.update(x=labels, y=values, hovertemplate="%{x}: %{y:,} clips<extra></extra>")
        layout.update(margin={"l": 50, "r": 10, "t": 40, "b": 90}, height=320,
                      xaxis={**every, "tickangle": -50}, yaxis=count_axis)
    else:
        bar.update(x=values, y=labels, orientation="h", hovertemplate="%{y}: %{x:,} clips<extra></extra>")
        layout.update(margin={"l": 90, "r": 40, "t": 40, "b": 40}, height=70 + 16 * len(labels),
                      yaxis={**every, "autorange": "reversed", "tickfont": {"size": 11}},
                      xaxis={**count_axis, "title": {"text": "clips", "standoff": 4}})
    return {"data": [bar], "layout": layout}


def _mix(stops: list[tuple[float, tuple[int, int, int]]], v: float) -> tuple[int, int, int]:
    """Linear interpolation between colour ``stops`` ((position, rgb), positions ascending) at ``v``."""
    v = max(0.0, min(1.0, v))
    for (p0, c0), (p1, c1) in zip(stops, stops[1:], strict=False):
        if v <= p1:
            t = (v - p0) / (p1 - p0) if p1 > p0 else 0.0
            return tuple(round(a + (b - a) * t) for a, b in zip(c0, c1, strict=True))  # type: ignore[return-value]
    return stops[-1][1]


# Correct predictions (the diagonal) in blue, confusions in orange-red: two scales, so that an
# off-diagonal 1 is never as pale as nothing next to a diagonal 12.
_DIAG = [(0.0, (255, 255, 255)), (1.0, (30, 60, 170))]
_ERR = [(0.0, (255, 236, 214)), (0.45, (247, 143, 62)), (1.0, (166, 30, 30))]


def confusion_cells(counts: list[list[int]], rates: list[list[float]], norm: str) -> list[list[dict]]:
    """Cell colours of a confusion matrix: ``[[{n, rate, bg, fg, err}]]``.

    The diagonal is shaded by the row's rate (its recall). Off the diagonal, cells are shaded on
    their own scale: relative to the biggest off-diagonal count (``norm="counts"``) or rate
    (``"row"``), square-rooted and starting visibly warm, so the smallest confusion stands out.
    """
    off = [(counts[i][j], rates[i][j]) for i in range(len(counts)) for j in range(len(counts)) if i != j]
    peak_n = max((n for n, _ in off), default=0) or 1
    peak_r = max((r for _, r in off), default=0.0) or 1.0
    out = []
    for i, row in enumerate(counts):
        cells = []
        for j, n in enumerate(row):
            rate = rates[i][j]
            if not n:
                cells.append(dict(n=0, rate=rate, bg="#fafbfc", fg="#c3c9d3", err=i != j))
                continue
            if i == j:
                rgb = _mix(_DIAG, rate ** 0.5)
                dark = rate > 0.35
            else:
                v = (n / peak_n if norm == "counts" else rate / peak_r) ** 0.5
                rgb = _mix(_ERR, 0.15 + 0.85 * v)
                dark = v > 0.55
            cells.append(dict(n=n, rate=rate, bg="rgb({},{},{})".format(*rgb), fg="#fff" if dark else "#1c2430",
                              err=i != j))
        out.append(cells)
    return out


def top_confusions(labels: list[str], counts: list[list[int]], rates: list[list[float]], k: int = 15) -> list[dict]:
    """The ``k`` biggest off-diagonal cells, most clips first: ``[{label, pred, n, rate}]``."""
    pairs = [dict(label=labels[i], pred=labels[j], n=n, rate=rates[i][j])
             for i, row in enumerate(counts) for j, n in enumerate(row) if i != j and n]
    pairs.sort(key=lambda p: (-p["n"], -p["rate"], p["label"], p["pred"]))
    return pairs[:k]


def confusion_diff_figure(classes: list[str], diff: list[list[int]], cma: list[list[int]], cmb: list[list[int]],
                          new_classes: list[str] | None = None) -> dict:
    """Heatmap of ``b - a`` confusion counts over the clips whose target is the same in both runs.

    Colour is the change for the better: green where b has more correct clips (diagonal) or fewer
    confusions (off it), red where it is worse; the text is the raw ``b - a`` count. Relabeled clips
    are not in these matrices, so relabeling never shows as a change. The colour scale is set by
    the classes both runs have: a class only b has (``_cutoff_``) is drawn, clamped to that scale.
    """
    n = len(classes)
    new = {classes.index(c) for c in (new_classes or []) if c in classes}
    good = [[(diff[i][j] if i == j else -diff[i][j]) for j in range(n)] for i in range(n)]
    top = max([abs(good[i][j]) for i in range(n) for j in range(n) if i not in new and j not in new] + [1])
    text = [[(f"{diff[i][j]:+d}" if diff[i][j] else "") for j in range(n)] for i in range(n)]
    hover = [[f"target {classes[i]} → predicted {classes[j]}<br>a: {cma[i][j]} · b: {cmb[i][j]} · "
              f"b − a: {diff[i][j]:+d}" for j in range(n)] for i in range(n)]
    cell = 30 if n <= 20 else 22
    return {
        "data": [{
            "type": "heatmap", "z": good, "x": classes, "y": classes, "text": text, "customdata": hover,
            "texttemplate": "%{text}", "textfont": {"size": 10 if n <= 20 else 8},
            "hovertemplate": "%{customdata}<extra></extra>", "zmin": -top, "zmax": top, "zmid": 0,
            "colorscale": [[0, "#c92a2a"], [0.5, "#ffffff"], [1, "#2b8a3e"]], "xgap": 1, "ygap": 1,
            "colorbar": {"title": {"text": "better →", "side": "right"}, "thickness": 12, "tickvals": []},
        }],
        "layout": {
            "font": {**FONT, "size": 11}, "height": max(320, 150 + cell * n), "width": 190 + cell * n,
            "margin": {"l": 20, "r": 20, "t": 10, "b": 20},
            "xaxis": {"title": {"text": "predicted", "standoff": 14}, "tickangle": -50, "side": "bottom",
                      "automargin": True, "tickmode": "array", "tickvals": classes, "ticktext": classes},
            "yaxis": {"title": {"text": "target", "standoff": 14}, "autorange": "reversed", "automargin": True,
                      "tickmode": "array", "tickvals": classes, "ticktext": classes},
            "plot_bgcolor": "#fff", "paper_bgcolor": "#fff",
        },
    }


def _nice_step(span: float, target: int = 4) -> float:
    """A round tick step giving about ``target`` intervals over ``span``."""
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0):
        if span / step <= target:
            return step
    return 120.0


def time_ticks(duration_s: float) -> list[dict]:
    """Ticks of a time axis over a clip: ``[{label, pct}]``, the unit on the last one ("1.0 s")."""
    if not duration_s or duration_s <= 0:
        return []
    step = _nice_step(duration_s)
    n = int(duration_s / step + 1e-9)
    ticks = [dict(label=f"{k * step:g}", pct=round(100 * k * step / duration_s, 3)) for k in range(n + 1)]
    ticks[-1]["label"] += " s"
    return ticks


def _hz_to_mel(f: float) -> float:
    return 2595.0 * math.log10(1.0 + f / 700.0)


def freq_ticks(sample_rate: int, n_mels: int, f_min: float) -> list[dict]:
    """Ticks of a mel spectrogram's frequency axis: ``[{label, pct}]``, ``pct`` from the bottom.

    The image's rows are the ``n_mels`` HTK-mel bands from ``f_min`` to Nyquist
    (``app.web.media.mel_filterbank``), stretched so the lowest band's centre is at the bottom
    and the highest's at the top.
    """
    lo, hi = _hz_to_mel(f_min), _hz_to_mel(sample_rate / 2)
    edges = [lo + (hi - lo) * k / (n_mels + 1) for k in range(n_mels + 2)]
    first, last = edges[1], edges[n_mels]
    out = []
    for f in (100, 250, 500, 1000, 2000, 4000, 8000, 16000):
        pos = (_hz_to_mel(f) - first) / (last - first)
        if 0.0 <= pos <= 1.0:
            out.append(dict(label=f"{f // 1000:g} kHz" if f >= 1000 else f"{f} Hz", pct=round(100 * pos, 3)))
    return out


def clip_axes(duration_s: float, sample_rate: int, front_ends: dict) -> dict:
    """The clip page's axes: ``{time: ticks, freq: {view name: ticks}}`` for the spectrogram views
    (``front_ends``: view name -> an ``app.web.media.FrontEnd`` or None) and the waveform."""
    return dict(time=time_ticks(duration_s),
                freq={name: freq_ticks(sample_rate, fe.n_mels, fe.f_min) for name, fe in front_ends.items() if fe})
