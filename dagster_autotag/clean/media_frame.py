"""ASR/OCR JSON → text for a whole column at once (polars), same results as media_json.py per row.

Rows are routed by the shape their JSON starts with; each common shape is decoded by polars'
`str.json_decode` in chunks. A chunk that fails to decode is halved until the offending rows are
isolated, and those rows (plus rare shapes: wrapped objects, deeper nesting) go through the
per-row reference parser in media_json.py, which also produces the quarantine reasons.

Text comes only from JSON strings (media_json.py's rule): polars would cast a number or boolean in a
string field to its spelling, so rows that may hold one are left to the reference, which
quarantines them.
"""

import polars as pl

from dagster_autotag.clean import media_json as ref
from dagster_autotag.clean import text

# Small decode chunks: simd-json's buffers then stay below the allocator's size for fresh mappings,
# and a chunk with a bad row costs less to bisect (measured: 2k rows, a quarter less CPU than 20k).
CHUNK_ROWS = 2_000
_STRINGS = pl.List(pl.String)
_FIELDS = (
    {k: pl.String for k in ref.TEXT_KEYS}
    | {k: pl.Float64 for k in ref.TIME_KEYS}
    | {k: _STRINGS for k in ref.LIST_TEXT_KEYS if k != "words"}
    | {"words": pl.List(pl.Struct({"text": pl.String}))}
)
_SEGMENT = pl.Struct(_FIELDS)
_KEY_LITERALS = [f'"{k}"' for k in _FIELDS]
_KEY_PREFIX_CHARS = 400
# shape name -> (prefix pattern, dtype, list depth)
_SHAPES = {
    "objects": (r"^\s*\[\s*\{", pl.List(_SEGMENT), 1),
    "strings": (r'^\s*\[\s*"', _STRINGS, 1),
    "nested_objects": (r"^\s*\[\s*\[\s*\{", pl.List(pl.List(_SEGMENT)), 2),
    "nested_strings": (r'^\s*\[\s*\[\s*"', pl.List(_STRINGS), 2),
}
_EMPTY = r"^\s*(\[\s*\]|null)?\s*$"
_FULLWIDTH = [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"]
_HALFWIDTH = [chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)] + [" "]
_WHITESPACE_RUN = text.WHITESPACE_RUN
# How polars spells a number or boolean it was asked to decode as a string; a row with a text
# spelled so goes to the reference, which decides (a real caption "5" only costs that row time).
_SCALAR_SPELLING = r"^(?:-?\d[\d.eE+-]*|true|false)$"
# A list-of-texts field holding a string: polars would make it a one-text list.
_STRING_FOR_LIST = rf'"(?:{"|".join(ref.LIST_TEXT_KEYS)})"\s*:\s*"'


def parse_asr_column(values: pl.Series) -> pl.DataFrame:
    """One row per input value: asr_text, segments, error (quarantine reason or null)."""
    return _parse(values, "asr")


def parse_ocr_column(values: pl.Series) -> pl.DataFrame:
    """One row per input value: ocr_text, frames, captions, error (quarantine reason or null)."""
    return _parse(values, "ocr")


def _parse(values: pl.Series, kind: str) -> pl.DataFrame:
    rows = pl.DataFrame({"row": pl.int_range(len(values), eager=True, dtype=pl.UInt32), "raw": values})
    shape = pl.lit(None, pl.String)
    # Truncated JSON (no closing bracket) goes straight to the reference parser: one bad row in a
    # chunk would otherwise cost the chunk several re-decodes while it is bisected.
    closed = pl.col("raw").str.contains(r"\]\s*$")
    for name, (pattern, _, _) in reversed(_SHAPES.items()):  # the most specific prefix wins
        shape = pl.when(closed & pl.col("raw").str.contains(pattern)).then(pl.lit(name)).otherwise(shape)
    shape = pl.when(pl.col("raw").is_null() | pl.col("raw").str.contains(_EMPTY)).then(pl.lit("empty")).otherwise(shape)
    rows = rows.with_columns(shape.alias("shape"))
    segment_parts, slow_rows = [], rows.filter(pl.col("shape").is_null())["row"].to_list()
    slow_rows += _string_for_list_rows(rows)
    for name, (_, dtype, depth) in _SHAPES.items():
        frame = rows.filter(pl.col("shape") == name).select("row", "raw")
        objects = name.endswith("objects")
        for part_dtype, part in _by_fields(frame, depth) if objects else [(dtype, frame)]:
            decoded, failed = _decode(part, part_dtype)
            slow_rows += failed
            if decoded is not None:
                segments, invalid = _segments(decoded, depth, objects=objects)
                segment_parts.append(segments)
                slow_rows += invalid
    segments = pl.concat(segment_parts) if segment_parts else _empty_segments()
    segments = segments.filter(~pl.col("row").is_in(slow_rows))

    fast = (_aggregate_asr if kind == "asr" else _aggregate_ocr)(segments)
    slow = _reference(rows.filter(pl.col("row").is_in(slow_rows)), kind)
    names = fast.columns
    result = rows.select("row").join(pl.concat([fast, slow.select(names)]), on="row", how="left").sort("row")
    # rows with neither segments nor an error are empty payloads: nothing recognised
    nothing = pl.col("error").is_null()
    result = result.with_columns(
        pl.col(names[1]).fill_null(pl.when(nothing).then(pl.lit(""))),
        *(pl.col(c).fill_null(pl.when(nothing).then(pl.lit(0, pl.Int32))) for c in names[2:-1]),
    )
    return result.drop("row")


def _string_for_list_rows(rows: pl.DataFrame) -> list[int]:
    # literal scans (memmem) first: a regex over every byte costs several times more
    raw = pl.col("raw")
    named = pl.any_horizontal([raw.str.contains(f'"{k}"', literal=True) for k in ref.LIST_TEXT_KEYS])
    candidates = rows.filter(pl.col("shape").str.ends_with("objects") & named)
    return candidates.filter(raw.str.contains(_STRING_FOR_LIST))["row"].to_list()


def _by_fields(frame: pl.DataFrame, depth: int) -> list[tuple[pl.DataType, pl.DataFrame]]:
    """Rows of an object shape, grouped so that each group is decoded with only the segment fields
    its rows hold: a field costs decoding time even where it is absent (all 22: ~40 % slower here).
    The keys named near the start of a row are the guess; a row that names another key anywhere,
    or escapes an ASCII character (a key could hide as "\\u0074ext"), gets every field. Extra
    fields only cost time, so a key inside a text value (a false hit) is harmless."""
    guessed = frame.with_columns(
        pl.col("raw")
        .str.slice(0, _KEY_PREFIX_CHARS)
        .str.extract_many(_KEY_LITERALS)
        .list.unique()
        .list.sort()
        .list.join(" ")
        .alias("keys")
    )
    parts, unsure = [], []
    for (keys,), part in guessed.partition_by("keys", as_dict=True, maintain_order=True).items():
        named = keys.split()
        others = [k for k in _KEY_LITERALS if k not in named]
        if not named or not others:
            unsure.append(part)
            continue
        raw = pl.col("raw")
        sure = part.select(~raw.str.contains_any(others) & ~raw.str.contains("\\u00", literal=True))["raw"]
        fields = pl.Struct({k: t for k, t in _FIELDS.items() if f'"{k}"' in named})
        parts.append((_nest(fields, depth), part.filter(sure).select("row", "raw")))
        unsure.append(part.filter(~sure))
    return parts + [(_nest(_SEGMENT, depth), pl.concat(unsure).select("row", "raw"))] if unsure else parts


def _nest(segment: pl.DataType, depth: int) -> pl.DataType:
    return pl.List(segment) if depth == 1 else pl.List(pl.List(segment))


def _decode(frame: pl.DataFrame, dtype: pl.DataType) -> tuple[pl.DataFrame | None, list[int]]:
    if frame.is_empty():
        return None, []
    done, failed = [], []
    stack = [frame.slice(i, CHUNK_ROWS) for i in range(0, frame.height, CHUNK_ROWS)]
    while stack:
        part = stack.pop()
        try:
            done.append(part.select("row", pl.col("raw").str.json_decode(dtype).alias("doc")))
        except pl.exceptions.PolarsError:
            if part.height == 1:
                failed.append(part["row"][0])
            else:  # isolate the bad rows; the rest of the chunk stays vectorised
                half = part.height // 2
                stack += [part.slice(0, half), part.slice(half)]
    return (pl.concat(done) if done else None), failed


def _empty_segments() -> pl.DataFrame:
    return pl.DataFrame(schema={"row": pl.UInt32, "time": pl.Float64, "texts": _STRINGS})


def _segments(decoded: pl.DataFrame, depth: int, objects: bool) -> tuple[pl.DataFrame, list[int]]:
    """Long format: one row per segment (row, time, texts), in array order within each row; plus
    the rows the reference parser must judge (a segment object without any text)."""
    long = decoded.explode("doc")
    if depth == 2:
        long = long.explode("doc")
    long = long.filter(pl.col("doc").is_not_null())  # null elements are skipped, as in the reference
    if not objects:
        scalar = long.filter(pl.col("doc").str.contains(_SCALAR_SPELLING))["row"].unique().to_list()
        return long.select("row", pl.lit(None, pl.Float64).alias("time"), pl.concat_list("doc").alias("texts")), scalar
    doc, fields = pl.col("doc").struct, {f.name for f in long.schema["doc"].fields}
    text = _first([doc.field(k) for k in ref.TEXT_KEYS if k in fields], pl.String)
    lists = [doc.field(k) for k in ref.LIST_TEXT_KEYS if k != "words" and k in fields]
    if "words" in fields:
        lists.append(doc.field("words").list.eval(pl.element().struct.field("text")))
    listed = _first(lists, _STRINGS)
    long = long.select(
        "row",
        _first([doc.field(k) for k in ref.TIME_KEYS if k in fields], pl.Float64).alias("time"),
        pl.when(text.is_not_null()).then(pl.concat_list(text)).otherwise(listed).alias("texts"),
    )
    bad = long.filter(
        pl.col("texts").is_null()
        | pl.col("texts").list.eval(pl.element().is_null() | pl.element().str.contains(_SCALAR_SPELLING)).list.any()
    )
    return long, bad["row"].unique().to_list()


def _first(values: list[pl.Expr], dtype: pl.DataType) -> pl.Expr:
    return pl.coalesce(values) if values else pl.lit(None, dtype)


def _in_time_order(segments: pl.DataFrame) -> pl.DataFrame:
    # Sort by time only where every segment of the row has one. Segments arrive in array order
    # within each row, so a stable sort keeps that order for ties.
    timed = pl.col("time").null_count().over("row") == 0
    return segments.sort("row", pl.when(timed).then(pl.col("time")).otherwise(0.0), maintain_order=True)


def _aggregate_asr(segments: pl.DataFrame) -> pl.DataFrame:
    ordered = _in_time_order(segments)
    counts = ordered.group_by("row").agg(pl.len().cast(pl.Int32).alias("segments"))
    texts = (
        ordered.select("row", pl.col("texts").alias("t"))
        .explode("t")
        .with_columns(pl.col("t").str.strip_chars())
        .filter(pl.col("t").is_not_null() & (pl.col("t") != ""))
        .group_by("row", maintain_order=True)
        .agg(pl.col("t").str.join(" ").alias("asr_text"))
    )
    return counts.join(texts, on="row", how="left").select(
        "row", pl.col("asr_text").fill_null(""), "segments", pl.lit(None, pl.String).alias("error")
    )


def _aggregate_ocr(segments: pl.DataFrame) -> pl.DataFrame:
    ordered = _in_time_order(segments)
    frames = ordered.group_by("row").agg(pl.len().cast(pl.Int32).alias("frames"))
    captions = (
        ordered.select("row", pl.col("texts").alias("text"))
        .explode("text")
        # Captions repeat over many frames and only a first occurrence can be kept: clean up each
        # distinct caption once (a key's first occurrence is always some caption's first occurrence).
        .unique(["row", "text"], keep="first", maintain_order=True)
        .with_columns(pl.col("text").str.replace_all(_WHITESPACE_RUN, " ").str.strip_chars())
        .with_columns(
            pl.col("text")
            .str.replace_many(_FULLWIDTH, _HALFWIDTH)
            .str.replace_all(_WHITESPACE_RUN, " ")
            .str.strip_chars()
            .alias("key")
        )
        .filter((pl.col("key") != "") & pl.struct("row", "key").is_first_distinct())
    )
    # captions are grouped by row: a neighbour counts only when it belongs to the same row
    before = pl.when(pl.col("row").shift(1) == pl.col("row")).then(pl.col("key").shift(1))
    after = pl.when(pl.col("row").shift(-1) == pl.col("row")).then(pl.col("key").shift(-1))
    contained = before.str.contains(pl.col("key"), literal=True).fill_null(False) | after.str.contains(
        pl.col("key"), literal=True
    ).fill_null(False)
    kept = (
        captions.filter(~contained)
        .group_by("row", maintain_order=True)
        .agg(pl.col("text").str.join(" ").alias("ocr_text"), pl.len().cast(pl.Int32).alias("captions"))
    )
    return frames.join(kept, on="row", how="left").select(
        "row",
        pl.col("ocr_text").fill_null(""),
        "frames",
        pl.col("captions").fill_null(0),
        pl.lit(None, pl.String).alias("error"),
    )


def _reference(rows: pl.DataFrame, kind: str) -> pl.DataFrame:
    parse = ref.asr_text if kind == "asr" else ref.ocr_text
    names = ["asr_text", "segments"] if kind == "asr" else ["ocr_text", "frames", "captions"]
    records = []
    for row, raw in rows.select("row", "raw").iter_rows():
        try:
            records.append((row, *parse(raw), None))
        except ref.MediaShapeError as err:
            records.append((row, None, *([None] * (len(names) - 1)), str(err)))
    schema = {"row": pl.UInt32, names[0]: pl.String} | {n: pl.Int32 for n in names[1:]} | {"error": pl.String}
    return pl.DataFrame(records, schema=schema, orient="row")
