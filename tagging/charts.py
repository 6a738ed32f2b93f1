"""Inline SVG charts' geometry in px (no chart library to ship, nothing fetched at run time): the templates draw
the bars this computes (`_bar_chart.html`, the campaign report)."""

from __future__ import annotations

BAR_HEIGHT = 150  # px of the tallest bar
TOP = 20  # px above the tallest bar, for its value


def bar_chart(rows: list[dict], *, label: str, value: str, step: int = 100, left: int = 0, height: int = BAR_HEIGHT,
              headroom: float = 1.0) -> dict:
    """One bar per row, `step` px apart from `left`; the tallest bar is `height` / `headroom` px (headroom above 1
    leaves room for a line drawn over the bars). Each bar keeps its row's fields, with its label, value, x, y and
    height; a missing value draws no bar."""
    tallest = max((row[value] or 0 for row in rows), default=0) * headroom
    bars = []
    for i, row in enumerate(rows):
        size = round(height * (row[value] or 0) / tallest) if tallest else 0
        bars.append({**row, "label": row[label], "value": row[value], "x": left + step * i, "height": size,
                     "y": TOP + height - size})
    return {"bars": bars, "width": left + step * len(rows), "bottom": TOP + height, "middle": step // 2,
            "bar_width": step - 30}


def line_chart(labels: list[str], series: dict[str, list[float | None]], *, width: int = 520, height: int = BAR_HEIGHT,
               left: int = 40) -> dict:
    """Lines over the same x labels, scaled to the largest value: per series its polyline's points and a dot per
    value (a missing value breaks nothing: the line joins the values there are). In px, for an inline SVG."""
    top = max((v for values in series.values() for v in values if v is not None), default=0) or 1
    step = (width - left - 20) / max(len(labels) - 1, 1)
    x = [round(left + step * i) for i in range(len(labels))]
    lines = []
    for name, values in series.items():
        dots = [{"x": x[i], "y": round(TOP + height - height * v / top), "value": v, "label": labels[i]}
                for i, v in enumerate(values) if v is not None]
        lines.append({"name": name, "dots": dots, "points": " ".join(f"{d['x']},{d['y']}" for d in dots)})
    return {"lines": lines, "ticks": [{"x": x[i], "label": label} for i, label in enumerate(labels)],
            "bottom": TOP + height, "top_value": top, "width": width}
