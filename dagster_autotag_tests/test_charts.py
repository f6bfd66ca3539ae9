"""Charts on a fresh machine: the bundled CJK font, fonts installed after matplotlib cached its list,
the AUTOTAG_CJK_FONT override, and charts that cannot be drawn (never an exception)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dagster_autotag import charts
from dagster_autotag.charts import CJK_FAMILIES, FONT_ENV, bundled_font_path, find_cjk_font, render_chart

# Run in a fresh interpreter: an empty matplotlib cache and no system font visible to it.
RENDER = """
import json, sys
import numpy as np
import polars as pl
from dagster_autotag.corpus.chart import distribution_chart
from dagster_autotag.train.evaluate import pr_curve_chart

dist = pl.DataFrame({
    "scheme": ["p0_newcar"] * 2, "metric": ["label"] * 2, "key": ["新车资讯/谍照", "新车资讯/新车上市"],
    "share": [0.1, 0.2], "count": [10, 20], "of": ["gate"] * 2, "denominator": [100, 100],
})
bars = distribution_chart(dist, "corpus/items 新车资讯")
curves = pr_curve_chart(np.array([[1, 0], [0, 1]]), np.array([[0.9, 0.2], [0.3, 0.8]]), ["谍照", "预售"])
json.dump([
    {"family": c.font.family, "source": c.font.source, "png": len(c.png or b""), "missing": len(c.missing_glyphs)}
    for c in (bars, curves)
], sys.stdout)
"""


def fresh_machine_env(tmp_path: Path) -> dict[str, str]:
    """What a newcomer's first run sees: no matplotlib cache, no CJK font installed. matplotlib's
    MPL_IGNORE_SYSTEM_FONTS hides the system fonts (CI installs a CJK one for Chromium)."""
    env = {k: v for k, v in os.environ.items() if k != FONT_ENV}
    (tmp_path / "mpl").mkdir()
    return {**env, "MPLCONFIGDIR": str(tmp_path / "mpl"), "MPL_IGNORE_SYSTEM_FONTS": "1", "HOME": str(tmp_path)}


@pytest.fixture
def lookup(monkeypatch):
    """Forget the font this process found, so each test resolves it again."""
    monkeypatch.setattr(charts, "_found", None)
    monkeypatch.delenv(FONT_ENV, raising=False)


def hide_system_cjk_fonts(monkeypatch, installed: list[str]) -> None:
    """matplotlib's cached list without CJK families (cached before the font existed); the OS's
    font files are now `installed`."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    monkeypatch.setattr(manager, "ttflist", [e for e in manager.ttflist if e.name not in CJK_FAMILIES])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: list(installed))


def test_a_fresh_machine_renders_chinese_with_the_bundled_font(tmp_path):
    env = fresh_machine_env(tmp_path)
    out = subprocess.run([sys.executable, "-c", RENDER], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    for chart in json.loads(out.stdout):
        assert chart["source"] == "bundled (noto-cjk-sans-otc)" and chart["family"] == "Noto Sans CJK SC"
        assert chart["missing"] == 0 and chart["png"] > 5_000
    # matplotlib built its cache in that run, and the system's CJK fonts were not in it
    cached = json.loads(next((tmp_path / "mpl").glob("fontlist-*.json")).read_text())
    assert not [f for f in cached["ttflist"] if f["name"] in CJK_FAMILIES]


def test_a_font_installed_after_matplotlib_cached_its_list_is_found(lookup, monkeypatch, tmp_path):
    installed = tmp_path / "fonts" / "NotoSansCJK-Regular.ttc"
    installed.parent.mkdir()
    installed.symlink_to(bundled_font_path())
    hide_system_cjk_fonts(monkeypatch, [str(installed)])
    font = find_cjk_font().font
    assert (font.source, font.path, font.family) == ("system", str(installed), "Noto Sans CJK SC")


def test_the_environment_variable_overrides_and_a_bad_value_falls_back(lookup, monkeypatch, tmp_path):
    hide_system_cjk_fonts(monkeypatch, [])
    chosen = tmp_path / "my-font.ttc"
    chosen.symlink_to(bundled_font_path())
    monkeypatch.setenv(FONT_ENV, str(chosen))
    assert find_cjk_font().font.path == str(chosen) and find_cjk_font().font.source == FONT_ENV

    monkeypatch.setattr(charts, "_found", None)
    monkeypatch.setenv(FONT_ENV, str(tmp_path / "missing.ttf"))
    chart = render_chart(lambda font: _figure_with_text("新车上市", font))
    assert chart.png is not None and chart.font.source.startswith("bundled")
    assert f"{FONT_ENV}={tmp_path / 'missing.ttf'} is not a usable font" in chart.note


def test_no_cjk_font_at_all_gives_no_chart_and_says_why(lookup, monkeypatch):
    hide_system_cjk_fonts(monkeypatch, [])
    shipped = charts.bundled_font_path
    monkeypatch.setattr(charts, "bundled_font_path", lambda: None)
    chart = render_chart(lambda font: _figure_with_text("新车上市", font))
    assert chart.png is None and chart.font is None
    assert chart.note.startswith("no CJK font") and FONT_ENV in chart.note
    assert chart.markdown("x").startswith("_no chart: no CJK font") and chart.summary()["chart_font"] == "none"
    assert find_cjk_font().font is None  # not remembered: a font that appears later is still found …
    monkeypatch.setattr(charts, "bundled_font_path", shipped)
    assert find_cjk_font().font.source.startswith("bundled")  # … as soon as it is there


def test_a_drawing_error_is_a_note_not_an_exception():
    def broken(font):
        raise ValueError("bad axes")

    chart = render_chart(broken)
    assert chart.png is None and chart.note == "drawing failed: ValueError: bad axes"


def _figure_with_text(text: str, font):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.text(0.1, 0.5, text, fontproperties=font.properties(12))
    return fig
