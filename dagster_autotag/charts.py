"""Charts are pictures of tables: drawn with a CJK font so Chinese labels show, and never allowed to
fail the asset they describe. No usable font, or any error while drawing, gives a Chart without a
PNG and a note that says why; the asset still writes its data.

The font, first found:
1. the file named by $AUTOTAG_CJK_FONT (.ttf/.otf/.ttc);
2. a system CJK family: matplotlib's cached font list, then system font files added since that
   cache was written (matplotlib never rescans on its own, so a font installed after the first run
   would otherwise stay invisible);
3. Noto Sans CJK shipped by the `noto-cjk-sans-otc` wheel, a required dependency, so charts render
   on a fresh machine with no apt step.
matplotlib is imported inside functions: loading the code location or a model needs no plots.
"""

import base64
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FONT_ENV = "AUTOTAG_CJK_FONT"
# Simplified-Chinese-capable families, preferred first (Noto/Source Han are the same design).
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
)


@dataclass(frozen=True)
class CJKFont:
    family: str
    path: str
    index: int  # face in a .ttc collection
    source: str  # "AUTOTAG_CJK_FONT", "system" or "bundled (noto-cjk-sans-otc)"

    def describe(self) -> str:
        return f"{self.family} ({self.source})"

    def properties(self, size: float | None = None):
        """The font by file, not by family name: matplotlib's name lookup sees neither fonts added
        after its cache was written nor, under MPL_IGNORE_SYSTEM_FONTS, any font of ours."""
        from matplotlib.font_manager import FontPath, FontProperties

        return FontProperties(fname=FontPath(self.path, self.index), size=size)


@dataclass
class FontLookup:
    font: CJKFont | None
    notes: list[str] = field(default_factory=list)  # why a candidate was passed over


@dataclass
class Chart:
    png: bytes | None  # None: no chart, `note` says why
    font: CJKFont | None = None
    missing_glyphs: list[str] = field(default_factory=list)  # matplotlib's warnings, one per character
    note: str = ""

    def markdown(self, alt: str) -> str:
        """Inline image for Dagster's Markdown metadata (the UI renders data: URIs), or the note."""
        if self.png is None:
            return f"_no chart: {self.note}_"
        return f"![{alt}](data:image/png;base64,{base64.b64encode(self.png).decode()})"

    def summary(self) -> dict[str, str | int]:
        """Plain values for asset metadata."""
        return {
            "chart_font": self.font.describe() if self.font else "none",
            "chart_missing_glyphs": len(self.missing_glyphs),
            "chart_note": self.note or ("ok" if self.png is not None else "no chart"),
        }


_found: CJKFont | None = None  # only a success is remembered: a font installed later is still found


def find_cjk_font() -> FontLookup:
    global _found
    if _found is not None:
        return FontLookup(_found)
    from matplotlib import font_manager

    notes: list[str] = []
    lookup = _from_env(notes) or _from_system(font_manager) or _bundled(notes)
    if lookup is None:
        notes.append(
            f"no CJK font: none of {', '.join(CJK_FAMILIES)} is installed and the bundled noto-cjk-sans-otc "
            f"font is unavailable (reinstall the project, or set {FONT_ENV} to a .ttf/.otf/.ttc file)"
        )
    _found = lookup
    return FontLookup(lookup, notes)


def _from_env(notes: list[str]) -> CJKFont | None:
    path = os.environ.get(FONT_ENV, "").strip()
    if not path:
        return None
    try:
        index, family = _pick_face(path)
    except Exception as exc:  # a wrong path must not take the chart's asset down: say so, fall back
        notes.append(f"{FONT_ENV}={path} is not a usable font ({type(exc).__name__}: {exc})")
        return None
    return CJKFont(family, path, index, FONT_ENV)


def _from_system(font_manager) -> CJKFont | None:
    entries = {entry.name: entry for entry in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in entries:
            entry = entries[family]
            return CJKFont(family, str(entry.fname), int(getattr(entry, "index", 0)), "system")
    known = {str(entry.fname) for entry in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():  # files on disk now, not the cached list
        if str(path) in known:
            continue
        try:
            index, family = _pick_face(path)
        except Exception:  # an unreadable file among the system fonts is not our chart's problem
            continue
        if family in CJK_FAMILIES:
            return CJKFont(family, str(path), index, "system")
    return None


def bundled_font_path() -> Path | None:
    try:
        import noto_cjk_sans_otc
    except ImportError:
        return None
    path = Path(str(noto_cjk_sans_otc.FONT_PATH))
    return path if path.is_file() else None


def _bundled(notes: list[str]) -> CJKFont | None:
    path = bundled_font_path()
    if path is None:
        return None
    try:
        index, family = _pick_face(str(path))
    except Exception as exc:
        notes.append(f"bundled font {path} unreadable ({type(exc).__name__}: {exc})")
        return None
    return CJKFont(family, str(path), index, "bundled (noto-cjk-sans-otc)")


def _pick_face(path: str) -> tuple[int, str]:
    """(face index, family) of the file: a collection's preferred CJK face, else its first."""
    from matplotlib import ft2font

    first = ft2font.FT2Font(path)
    faces = [(0, first.family_name)] + [
        (i, ft2font.FT2Font(path, face_index=i).family_name) for i in range(1, first.num_faces)
    ]
    by_family = {family: index for index, family in reversed(faces)}
    family = next((f for f in CJK_FAMILIES if f in by_family), faces[0][1])
    return by_family[family], family


def render_chart(draw: Callable[[CJKFont], object], path: Path | None = None) -> Chart:
    """`draw(font)` builds a matplotlib Figure, its text set with `font.properties(size)`; the PNG
    is returned (and written to `path`). Never raises: no font or a drawing error gives a Chart
    with a note."""
    lookup = find_cjk_font()
    if lookup.font is None:
        return Chart(None, note="; ".join(lookup.notes))
    try:
        fig = draw(lookup.font)
        buf = io.BytesIO()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(buf, format="png")
        png = buf.getvalue()
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_bytes(png)
    except Exception as exc:  # a picture of the table is never worth the table
        return Chart(None, lookup.font, note=f"drawing failed: {type(exc).__name__}: {exc}")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    note = "; ".join(lookup.notes) + (f"; {len(missing)} glyph(s) missing from the font" if missing else "")
    return Chart(png, lookup.font, missing, note.strip("; "))
