"""Bar chart of a label distribution with Chinese labels (font and failure rules: charts.py)."""

import polars as pl

from dagster_autotag.charts import Chart, CJKFont, render_chart


def distribution_chart(dist: pl.DataFrame, title: str) -> Chart:
    """One horizontal bar panel per scheme: each label's share of the gate positives (rules: of
    all items), with the count at the end of each bar."""
    panels = [
        (scheme, dist.filter((pl.col("scheme") == scheme) & (pl.col("metric") == "label")))
        for scheme in dist["scheme"].unique(maintain_order=True).to_list()
    ]
    panels = [(s, p) for s, p in panels if p.height]
    if not panels:
        return Chart(None, note="no labels to draw")
    return render_chart(lambda font: _figure(panels, title, font))


def _figure(panels: list[tuple[str, pl.DataFrame]], title: str, font: CJKFont):
    from matplotlib.figure import Figure

    heights = [max(p.height, 2) * 0.32 + 0.9 for _, p in panels]
    fig = Figure(figsize=(8.5, sum(heights) + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (scheme, part) in zip(axes, panels):
        labels = [k.split("/")[-1] if scheme != "rules" else k for k in part["key"].to_list()][::-1]
        shares = part["share"].to_list()[::-1]
        counts = part["count"].to_list()[::-1]
        of = part["of"][0]
        bars = ax.barh(labels, shares, color="#4c78a8")
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontproperties=font.properties(8))
        ax.set_title(
            f"{scheme} — share of {'gate positives' if of == 'gate' else of} (n={part['denominator'][0]:,})",
            fontproperties=font.properties(10),
            loc="left",
        )
        ax.set_xlim(0, max(max(shares, default=0) * 1.18, 0.05))
        ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
        for tick in ax.get_yticklabels():
            tick.set_fontproperties(font.properties(9))
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, fontproperties=font.properties(12))
    return fig
