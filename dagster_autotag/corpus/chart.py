"""Bar chart of a label distribution, with a CJK font so Chinese labels render (no tofu boxes).

The font is the first installed family of CJK_FAMILIES (Debian: `apt-get install fonts-noto-cjk`),
or the file named by AUTOTAG_CJK_FONT. Glyphs the font lacks are reported, not hidden.
"""

import base64
import io
import os
import warnings
from dataclasses import dataclass
from functools import cache

import polars as pl

CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
)
FONT_ENV = "AUTOTAG_CJK_FONT"


class NoCJKFontError(RuntimeError):
    pass


@dataclass
class Chart:
    png: bytes
    font: str
    missing_glyphs: list[str]  # matplotlib's warnings, one per missing character

    def markdown(self, alt: str = "label distribution") -> str:
        """Inline image for Dagster's Markdown metadata (the UI renders data: URIs)."""
        return f"![{alt}](data:image/png;base64,{base64.b64encode(self.png).decode()})"


@cache
def cjk_font_family() -> str:
    from matplotlib import font_manager  # here: loading the code location (every step process) needs no plots

    path = os.environ.get(FONT_ENV)
    if path:
        font_manager.fontManager.addfont(path)
        return font_manager.FontProperties(fname=path).get_name()
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    raise NoCJKFontError(
        f"no CJK font found (looked for {', '.join(CJK_FAMILIES)}): install one "
        f"(Debian: apt-get install fonts-noto-cjk) or set {FONT_ENV} to a .ttf/.otf/.ttc file"
    )


def distribution_chart(dist: pl.DataFrame, title: str) -> Chart:
    """One horizontal bar panel per scheme: each label's share of the gate positives (rules: of
    all items), with the count at the end of each bar."""
    panels = [
        (scheme, dist.filter((pl.col("scheme") == scheme) & (pl.col("metric") == "label")))
        for scheme in dist["scheme"].unique(maintain_order=True).to_list()
    ]
    panels = [(s, p) for s, p in panels if p.height]
    from matplotlib.figure import Figure

    family = cjk_font_family()
    heights = [max(p.height, 2) * 0.32 + 0.9 for _, p in panels]
    fig = Figure(figsize=(8.5, sum(heights) + 0.6), dpi=100, layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (scheme, part) in zip(axes, panels):
        labels = [k.split("/")[-1] if scheme != "rules" else k for k in part["key"].to_list()][::-1]
        shares = part["share"].to_list()[::-1]
        counts = part["count"].to_list()[::-1]
        of = part["of"][0]
        bars = ax.barh(labels, shares, color="#4c78a8")
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=8, fontfamily=family)
        ax.set_title(
            f"{scheme} — share of {'gate positives' if of == 'gate' else of} (n={part['denominator'][0]:,})",
            fontsize=10,
            fontfamily=family,
            loc="left",
        )
        ax.set_xlim(0, max(max(shares, default=0) * 1.18, 0.05))
        ax.xaxis.set_major_formatter(lambda x, _: f"{x:.0%}")
        for tick in ax.get_yticklabels():
            tick.set_fontfamily(family)
            tick.set_fontsize(9)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title, fontfamily=family, fontsize=12)
    buf = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(buf, format="png")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    return Chart(buf.getvalue(), family, missing)
