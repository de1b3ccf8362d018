"""Pure figure builders: data in, plotly figure dicts out (rendered in the browser by plotly.js).

No I/O and no store access here, so each builder is easy to test.
"""

from __future__ import annotations

ACCENT = "#3b5bdb"
WARN = "#e8590c"
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12, color="#1c2430")


def class_distribution(split: str, counts: dict[str, int], under: list[str]) -> dict:
    """One split's clips per label as bars; under-represented labels in orange with a marker."""
    labels = list(counts)
    values = [counts[k] for k in labels]
    low = set(under)
    colors = [WARN if k in low else ACCENT for k in labels]
    text = ["▼ few" if k in low else "" for k in labels]
    return {
        "data": [{
            "type": "bar", "x": labels, "y": values, "marker": {"color": colors}, "text": text,
            "textposition": "outside", "cliponaxis": False, "textfont": {"color": WARN, "size": 10},
            "hovertemplate": "%{x}: %{y:,} clips<extra></extra>",
        }],
        "layout": {
            "title": {"text": f"{split} · {sum(values):,} clips", "font": {"size": 14}, "x": 0.01},
            "margin": {"l": 50, "r": 10, "t": 40, "b": 90}, "font": FONT, "bargap": 0.2,
            "xaxis": {"tickangle": -50, "automargin": True}, "yaxis": {"title": {"text": "clips"}, "gridcolor": "#eef0f4"},
            "plot_bgcolor": "#fff", "paper_bgcolor": "#fff", "height": 320,
        },
    }


def heat_color(value: float) -> tuple[str, str]:
    """(background, text colour) for a confusion cell with ``value`` in [0, 1] (white -> deep blue)."""
    v = max(0.0, min(1.0, value)) ** 0.5  # sqrt keeps small off-diagonal counts visible
    r = round(255 + (30 - 255) * v)
    g = round(255 + (60 - 255) * v)
    b = round(255 + (170 - 255) * v)
    return f"rgb({r},{g},{b})", ("#fff" if v > 0.55 else "#1c2430")
