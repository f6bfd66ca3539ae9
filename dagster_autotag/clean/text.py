"""Text normalisation for titles and summaries, vectorised with polars.

Order matters: tags are stripped before entities are decoded, so an escaped `&lt;b&gt;` in the
text survives as a literal `<b>`; full-width ASCII is folded after decoding so `&#xFF21;` folds too.
"""

import html

import polars as pl

# Block-level tags separate words; inline tags (<b>, <span>) sit inside CJK text and just vanish.
_BLOCK_TAG = r"(?i)</?(?:br|p|div|li|ul|ol|tr|td|th|h[1-6]|table|section|article)\b[^<>]{0,200}>"
_TAG = r"</?[A-Za-z][^<>]{0,200}>"
_ENTITY = r"&(#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
# C0/C1 controls except tab/newline (whitespace, collapsed below), zero-width and bidi marks, BOM.
_INVISIBLE = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
# U+FF01..U+FF5E are the full-width forms of ASCII 0x21..0x7E; U+3000 is the ideographic space.
_FULLWIDTH = [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
_HALFWIDTH = [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)] + [" "]


def normalise_columns(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """HTML tags and entities removed, full-width ASCII → half-width, invisible characters removed,
    whitespace collapsed. Null stays null; a value that normalises to nothing becomes ""."""
    frame = frame.with_columns(pl.col(c).str.replace_all(_BLOCK_TAG, " ").str.replace_all(_TAG, "") for c in columns)
    frame = _decode_entities(frame, columns)
    return frame.with_columns(
        pl.col(c)
        .str.replace_many(_FULLWIDTH, _HALFWIDTH)
        .str.replace_all(_INVISIBLE, "")
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
        for c in columns
    )


def _decode_entities(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    # html.unescape knows all 2,000+ named entities; run it only on the few rows that have one.
    for c in columns:
        hits = frame.select(pl.col(c).str.contains(_ENTITY).fill_null(False).arg_true())[c]
        if len(hits):
            decoded = [html.unescape(v) for v in frame[c].gather(hits).to_list()]
            frame = frame.with_columns(frame[c].scatter(hits, decoded))
    return frame


def normalise_text(text: str | None) -> str | None:
    """The same normalisation for one string (tests, ad-hoc use)."""
    return normalise_columns(pl.DataFrame({"t": [text]}, schema={"t": pl.String}), ["t"])["t"][0]
