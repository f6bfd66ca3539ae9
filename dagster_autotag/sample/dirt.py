"""Dirt: what real exports contain besides clean rows.

Row-level dirt is representable in a real Hive table (plain strings / NULL); file-level dirt only
exists in a text export (broken lines, invalid UTF-8). Every kind appears at least once when dirt is
enabled (file dirt: once the table has FILE_DIRT_MIN_LINES lines), so small samples still exercise it,
and the total stays well under 1% of news_pool rows.
"""

import random

import numpy as np

# news_pool row-level dirt: kind -> share of items (item kinds) or of rows (row kinds).
# The first three are removed by the export filters; the rest reach cleaning / quarantine.
NEWS_ITEM_DIRT = {
    "dtype_other": 0.003,
    "grade_z": 0.002,
    "gc_excluded": 0.002,
    "null_title": 0.0005,
    "null_summary": 0.001,
    "tab_newline": 0.0015,
    "html": 0.002,
    "fullwidth": 0.0015,
    "zero_width": 0.0015,
    "control_chars": 0.0005,
}
NEWS_ROW_DIRT = {
    "duplicate_row": 0.0015,
    "bad_create_time": 0.0003,
    "bad_itemid": 0.0003,
    "unknown_tag": 0.0008,
}
# asr / ocr dirt: kind -> share of video rows.
MEDIA_DIRT = {
    "malformed_json": 0.0015,  # with unknown_shape: ~0.3% quarantined, well under the 1% limit
    "unknown_shape": 0.0015,
    "orphan": 0.005,  # a row for a video that is not in the news pool
    "duplicate": 0.004,  # the same video twice (exact copy)
}
# Payloads the pipeline quarantines are forced in (at least one each) only from this many media rows
# on: on a small day one bad payload alone would exceed the 1% quarantine limit.
QUARANTINED_MEDIA_DIRT = ("malformed_json", "unknown_shape")
MEDIA_DIRT_MIN_ROWS = 400
# File-level dirt: kind -> share of lines, for news_pool, asr and ocr (never tag_dim).
FILE_DIRT = {"too_few_columns": 0.0005, "too_many_columns": 0.0005, "invalid_utf8": 0.0005, "blank_line": 0.0005}
FILE_DIRT_MIN_LINES = 1000

OTHER_DTYPES = ("koubei", "ask", "live", "short_video")
EXCLUDED_GC = ("AGC-XIAOYI", "AGC-XIAOSHA")
CONTROL_CHARS = ("\x01", "\x07", "\x08", "\x1b", "\x7f")
ZERO_WIDTH = ("\u200b", "\u200b", "\u200b", "\ufeff", "\u200d")


def count(share: float, n: int, minimum: int = 1) -> int:
    if n <= 0:
        return 0
    return max(minimum, int(round(share * n)))


def media_dirt_counts(n_rows: int) -> dict[str, int]:
    """How many rows of each media-dirt kind an ASR/OCR table of n_rows gets (deterministic)."""
    return {
        k: count(s, n_rows, 0 if k in QUARANTINED_MEDIA_DIRT and n_rows < MEDIA_DIRT_MIN_ROWS else 1)
        for k, s in MEDIA_DIRT.items()
    }


def file_dirt_counts(n_lines: int) -> dict[str, int]:
    """How many lines of each file-dirt kind a table of n_lines gets (deterministic)."""
    minimum = 1 if n_lines >= FILE_DIRT_MIN_LINES else 0
    return {k: count(s, n_lines, minimum) for k, s in FILE_DIRT.items()}


def choose_disjoint(rng: np.random.Generator, n: int, counts: dict[str, int], eligible=None) -> dict[str, list[int]]:
    """Disjoint index sets per kind (so each dirty item has exactly one kind), in ascending order.

    eligible: optional {kind: bool mask} restricting where a kind may land.
    """
    order = rng.permutation(n).tolist()
    taken = bytearray(n)
    out: dict[str, list[int]] = {}
    for kind, k in counts.items():
        mask = None if eligible is None else eligible.get(kind)
        chosen: list[int] = []
        for i in order:
            if len(chosen) >= k:
                break
            if not taken[i] and (mask is None or mask[i]):
                taken[i] = 1
                chosen.append(i)
        out[kind] = sorted(chosen)
    return out


# ---- text mutations (titles / summaries) -------------------------------------------------------


def html(rnd: random.Random, text: str) -> str:
    u = rnd.random()
    if u < 0.3:
        return f"<b>{text}</b>"
    if u < 0.5:
        return text.replace("，", "&nbsp;", 1) if "，" in text else text + "&nbsp;"
    if u < 0.7:
        i = 1 + int(rnd.random() * (len(text) - 1))
        return f"{text[:i]}&#x{ord(text[i]):X};{text[i + 1 :]}" if len(text) > 2 else f"{text}&amp;"
    if u < 0.85:
        return text + "&amp;更多车型"
    return f"<em>{text}</em><br/>"


def fullwidth(rnd: random.Random, text: str) -> str:
    """ASCII -> full-width forms (宝马X5 -> 宝马Ｘ５, space -> ideographic space)."""
    out = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in text)
    return out if out != text else "ＮＥＷ\u3000" + text


def zero_width(rnd: random.Random, text: str) -> str:
    for _ in range(1 + int(rnd.random() * 3)):
        i = int(rnd.random() * (len(text) + 1))
        text = text[:i] + ZERO_WIDTH[int(rnd.random() * len(ZERO_WIDTH))] + text[i:]
    return text


def control_chars(rnd: random.Random, text: str) -> str:
    i = int(rnd.random() * (len(text) + 1))
    return text[:i] + CONTROL_CHARS[int(rnd.random() * len(CONTROL_CHARS))] + text[i:]


def tab_newline(rnd: random.Random, text: str) -> str:
    """A tab or line break inside a value (Hive prints it raw: NUL-wrapped or quoted in tsv2)."""
    sep = ("\n", "\t", "\r\n", "\n\n")[int(rnd.random() * 4)]
    if "。" in text[:-1]:
        return text.replace("。", "。" + sep, 1)
    i = max(1, len(text) // 2)
    return text[:i] + sep + text[i:]


def bad_create_time(rnd: random.Random, year: int) -> str:
    return (f"{year}-13-45 99:00:00", "昨天", "0000-00-00 00:00:00", "刚刚", f"{year}/02/30 25:61")[
        int(rnd.random() * 5)
    ]
