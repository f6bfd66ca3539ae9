"""Reading Hive `--outputformat=tsv2 --showHeader=false` export files, correctly and fast.

Format (see tsv_format.py): tab separated, no header, `NULL` for null; a value holding a tab or
newline is wrapped in NUL bytes (Hive's default) or, with quoting enabled, in `"` with `""`.

How: a vectorised numpy pass over the bytes finds the record boundaries (newlines outside quoted
values), each record's physical start line and column count, and bad UTF-8.
A quote byte opens a value only where a field starts and closes it only where a field ends, within
`max_value_lines` lines and `max_value_bytes` bytes; an opener without such a partner (a broken
export: a stray or unclosed NUL) costs only its own record, which is quarantined, and the lines
after it are read as records again, instead of being swallowed into the value. Bad records go to
quarantine with their line and a reason; the good bytes are parsed by pyarrow's C++ CSV reader.
If pyarrow ever splits records differently than the pre-pass (e.g. a stray carriage return), that
file falls back to a pure-Python splitter built on the same boundaries: slower, never wrong.
"""

import codecs
import mmap
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from dagster_autotag.ingest.source import FILE_COLUMN, LINE_COLUMN, QuarantinedLine, RawBatch
from dagster_autotag.ingest.tsv_format import NULL_LITERAL, QUOTING_MODES

_TAB, _LF, _CR = 9, 10, 13
_UTF8_ERROR_HANDLER = "dagster_autotag.note_invalid_utf8"
# pyarrow refuses NUL as a quote character; NUL is swapped for a control byte absent from the file.
_QUOTE_STAND_INS = (1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25)
# Records per block when locating invalid UTF-8: bad records are rare, so few blocks need decoding.
_UTF8_BLOCK_RECORDS = 32
_UTF8_GROUP_BLOCKS = 32  # blocks validated together before each is validated alone
_SCAN_BLOCK = 1 << 22  # bytes per block when locating tabs, newlines and quotes
# How far a quoted value may run before its opener is judged unclosed. Hive wraps a value in NULs
# only when it holds a tab or newline (a text with line breaks): generous, yet far below a file.
MAX_VALUE_LINES = 1_000
MAX_VALUE_BYTES = 8 << 20


def read_export_file(
    path: Path,
    column_names: list[str],
    quoting: str = "nul",
    file_label: str | None = None,
    max_value_lines: int = MAX_VALUE_LINES,
    max_value_bytes: int = MAX_VALUE_BYTES,
) -> RawBatch:
    """Parse one export file into string columns plus `_file`/`_line`, quarantining bad records."""
    return parse_export_bytes(
        _map_file(Path(path)), column_names, quoting, file_label or str(path), max_value_lines, max_value_bytes
    )


def _map_file(path: Path) -> mmap.mmap | bytes:
    # Mapped, not read: the page cache is scanned and parsed in place. Reading 650 MB of ASR exports
    # into fresh buffers cost 0.6-1 s of page faults; the mapping, 0.1 s.
    with open(path, "rb") as file:
        if not path.stat().st_size:
            return b""
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def parse_export_bytes(
    data: bytes | mmap.mmap,
    column_names: list[str],
    quoting: str,
    file_label: str,
    max_value_lines: int = MAX_VALUE_LINES,
    max_value_bytes: int = MAX_VALUE_BYTES,
) -> RawBatch:
    if quoting not in QUOTING_MODES:
        raise ValueError(f"unknown quoting mode {quoting!r}; expected one of {QUOTING_MODES}")
    if max_value_lines < 1 or max_value_bytes < 0:
        raise ValueError(
            f"max_value_lines must be ≥ 1 and max_value_bytes ≥ 0, got {max_value_lines}, {max_value_bytes}"
        )
    quote_byte = 0 if quoting == "nul" else ord('"')
    ncols = len(column_names)
    layout = _scan_records(data, quote_byte, _QuoteLimits(max_value_lines, max_value_bytes))

    quarantine: list[QuarantinedLine] = []
    bad = layout.tab_counts != ncols - 1
    for i, reason in layout.unclosed.items():
        bad[i] = True
        quarantine.append(
            QuarantinedLine(file_label, int(layout.lines[i]), _show(data[layout.starts[i] : layout.ends[i]]), reason)
        )
    for i in np.flatnonzero(bad):
        if i in layout.unclosed:
            continue
        raw = data[layout.starts[i] : layout.ends[i]]
        reason = "empty line" if not raw else f"expected {ncols} columns, found {int(layout.tab_counts[i]) + 1}"
        quarantine.append(QuarantinedLine(file_label, int(layout.lines[i]), _show(raw), reason))
    if not _is_valid_utf8(data):
        for i in _invalid_utf8_records(data, layout, bad):
            bad[i] = True
            raw = data[layout.starts[i] : layout.ends[i]]
            quarantine.append(QuarantinedLine(file_label, int(layout.lines[i]), _show(raw), "invalid UTF-8"))
    columns = _parse_good_records(data, layout, np.flatnonzero(~bad), column_names, quoting)
    quarantine.sort(key=lambda q: q.line or 0)

    good = np.flatnonzero(~bad)
    n = len(good)
    table = pa.table(
        {name: columns[name] for name in column_names}
        | {
            FILE_COLUMN: pa.array([file_label] * n, pa.string()),
            LINE_COLUMN: pa.array(layout.lines[good], pa.int64()),
        }
    )
    return RawBatch(rows=table, quarantine=quarantine)


class _Layout:
    """Per record: byte start/end (end excludes the newline), physical start line, unquoted tab count;
    and the records holding an opening quote without a plausible partner, with the reason."""

    def __init__(self, starts, ends, lines, tab_counts, unclosed: dict[int, str]):
        self.starts, self.ends, self.lines, self.tab_counts = starts, ends, lines, tab_counts
        self.unclosed = unclosed


class _QuoteLimits:
    def __init__(self, max_lines: int, max_bytes: int):
        self.max_lines, self.max_bytes = max_lines, max_bytes


def _scan_records(data: bytes, quote_byte: int, limits: _QuoteLimits) -> _Layout:
    buf = np.frombuffer(data, dtype=np.uint8)
    quotes, newlines, tabs = _byte_positions(buf, (quote_byte, _LF, _TAB))
    quotes, broken = _pair_quotes(buf, quotes, newlines, quote_byte, limits)
    # A byte is inside a quoted value when an odd number of quote bytes precede it. `""` inside a
    # csv-quoted value toggles twice, so the doubled-quote escape needs no special case.
    record_ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
    unquoted_tabs = tabs[np.searchsorted(quotes, tabs) % 2 == 0]

    ends = record_ends
    if len(buf) and (len(ends) == 0 or ends[-1] != len(buf) - 1):
        ends = np.append(ends, len(buf))  # last record without a trailing newline
    starts = np.concatenate(([0], record_ends + 1))[: len(ends)]
    # Physical line of each record start = 1 + newlines before it (quoted newlines included).
    lines = np.searchsorted(newlines, starts) + 1
    tab_counts = np.diff(np.searchsorted(unquoted_tabs, np.concatenate((starts, [len(buf) + 1]))))[: len(ends)]
    # Hive writes \n; tolerate \r\n by leaving the \r out of the record.
    crlf = (ends > starts) & (ends <= len(buf)) & (buf[np.minimum(ends, len(buf)) - 1] == _CR)
    ends = np.where(crlf, ends - 1, ends)
    unclosed = {}
    name = "NUL byte" if quote_byte == 0 else "quote"
    for position, why in broken:
        record = int(np.searchsorted(starts, position, side="right") - 1)
        column = int(np.searchsorted(unquoted_tabs, position) - np.searchsorted(unquoted_tabs, starts[record])) + 1
        unclosed.setdefault(record, why.format(name=name, column=column))
    return _Layout(starts.astype(np.int64), ends.astype(np.int64), lines.astype(np.int64), tab_counts, unclosed)


def _pair_quotes(buf, quotes, newlines, quote_byte, limits) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The quote bytes that delimit values, and (position, reason) of each opener left unpaired.

    Quotes pair in order (1st opens, 2nd closes, ...). A pair is plausible when the opener starts a
    field, the closer ends one, and the value stays within the limits. Where a pair is not, its
    opener is broken: its line is given up (its other quotes ignored) and pairing resumes with the
    first quote after that line. Vectorised: the loop runs once per broken opener."""
    n = len(quotes)
    if n == 0:
        return quotes, []
    before, after = buf[np.maximum(quotes - 1, 0)], buf[np.minimum(quotes + 1, len(buf) - 1)]
    opens_field = (quotes == 0) | (before == _TAB) | (before == _LF)
    closes_field = (quotes == len(buf) - 1) | (after == _TAB) | (after == _LF) | (after == _CR)
    if quote_byte != 0:  # csv: "" inside a quoted value is an escaped quote, so quotes may touch
        opens_field |= before == quote_byte
        closes_field |= after == quote_byte
    newlines_before = np.searchsorted(newlines, quotes)
    within = np.zeros(n, dtype=bool)
    within[:-1] = (np.diff(quotes) - 1 <= limits.max_bytes) & (np.diff(newlines_before) < limits.max_lines)
    pairs = np.zeros(n, dtype=bool)  # pairs[i]: quote i opens a value that quote i + 1 closes
    pairs[:-1] = opens_field[:-1] & closes_field[1:] & within[:-1]
    unpaired = [np.flatnonzero(~pairs[parity::2]) * 2 + parity for parity in (0, 1)]

    keep, broken, i = np.zeros(n, dtype=bool), [], 0
    while i < n:
        candidates = unpaired[i % 2]
        k = np.searchsorted(candidates, i)
        j = int(candidates[k]) if k < len(candidates) else n
        keep[i:j] = True
        if j >= n:
            break
        broken.append((int(quotes[j]), _why_unpaired(j, n, opens_field, closes_field, within, limits)))
        line = int(newlines_before[j])
        i = int(np.searchsorted(quotes, newlines[line], side="right")) if line < len(newlines) else n
    return (quotes if len(broken) == 0 else quotes[keep]), broken


def _why_unpaired(j, n, opens_field, closes_field, within, limits) -> str:
    if not opens_field[j]:
        return "stray {name} inside column {column}"
    if j == n - 1:
        return "value opened by a {name} in column {column} is not closed before the end of the file"
    if not within[j]:
        return (
            "value opened by a {name} in column {column} is not closed within "
            f"{limits.max_lines} lines / {limits.max_bytes} bytes"
        )
    return "value opened by a {name} in column {column} is not closed where a value ends"


def _byte_positions(buf: np.ndarray, values: tuple[int, ...]) -> list[np.ndarray]:
    """Sorted positions of each byte value, found block by block through one small scratch mask:
    file-sized boolean temporaries cost more in page faults (huge pages zeroed) than the compares."""
    mask = np.empty(min(len(buf), _SCAN_BLOCK), dtype=bool)
    found: list[list[np.ndarray]] = [[] for _ in values]
    for start in range(0, len(buf), _SCAN_BLOCK):
        block = buf[start : start + _SCAN_BLOCK]
        scratch = mask[: len(block)]
        for positions, value in zip(found, values):
            positions.append(np.flatnonzero(np.equal(block, value, out=scratch)) + start)
    return [np.concatenate(p) if p else np.zeros(0, np.int64) for p in found]


def _invalid_utf8_records(data: bytes, layout: _Layout, already_bad: np.ndarray) -> list[int]:
    """Records holding invalid UTF-8. Arrow's validator finds the blocks of records that hold some;
    only those blocks are decoded in Python, with a handler that notes where bytes fail."""
    positions: list[int] = []

    def note(err: UnicodeDecodeError) -> tuple[str, int]:
        positions.append(block_start + err.start)
        return "", err.end

    codecs.register_error(_UTF8_ERROR_HANDLER, note)
    for block_start, block_end in _invalid_utf8_blocks(data, layout):
        data[block_start:block_end].decode("utf-8", errors=_UTF8_ERROR_HANDLER)
    if not positions:
        return []
    records = np.unique(np.searchsorted(layout.starts, np.asarray(positions), side="right") - 1)
    return [int(i) for i in records if not already_bad[i]]


def _invalid_utf8_blocks(data: bytes, layout: _Layout) -> list[tuple[int, int]]:
    """Byte ranges of the record blocks that hold invalid UTF-8: groups of blocks are validated
    first and only the blocks of a failing group one by one (a third of the validator calls on
    a news file with 111 bad records in 250k)."""
    # Blocks start at record starts (after a newline), so no multi-byte character is cut in two.
    bounds = np.append(layout.starts[::_UTF8_BLOCK_RECORDS], len(data)).astype(np.int64)
    blocks = _binary_view(data, bounds)
    groups = _binary_view(data, np.append(bounds[:-1:_UTF8_GROUP_BLOCKS], len(data)).astype(np.int64))
    failing = [g for g in range(len(groups)) if not _is_valid_utf8_array(groups.slice(g, 1))]
    return [
        (int(bounds[i]), int(bounds[i + 1]))
        for g in failing
        for i in range(g * _UTF8_GROUP_BLOCKS, min((g + 1) * _UTF8_GROUP_BLOCKS, len(blocks)))
        if not _is_valid_utf8_array(blocks.slice(i, 1))
    ]


def _parse_good_records(data, layout, good, column_names, quoting) -> dict[str, pa.Array]:
    """pyarrow where it agrees with the pre-pass, else the pure-Python splitter: slower, never wrong."""
    if len(good) == 0:
        return {name: pa.array([], pa.string()) for name in column_names}
    columns = _parse_with_arrow(_good_bytes(data, layout, good), column_names, quoting)
    if columns is None or len(columns[column_names[0]]) != len(good):
        python_columns = _parse_with_python(data, layout, good, column_names, quoting)
        columns = {name: _null_literal_to_null(arr) for name, arr in python_columns.items()}
    return columns


def _is_valid_utf8(data: bytes) -> bool:
    # Arrow's SIMD validation over the bytes as one large_binary value: no copy, no Python str.
    return _is_valid_utf8_array(_binary_view(data, np.array([0, len(data)], dtype=np.int64)))


def _binary_view(data: bytes, offsets: np.ndarray) -> pa.Array:
    """The bytes as large_binary values between consecutive offsets, without copying them."""
    return pa.Array.from_buffers(
        pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    )


def _is_valid_utf8_array(values: pa.Array) -> bool:
    try:
        values.cast(pa.large_string())
        return True
    except pa.ArrowInvalid:
        return False


def _good_bytes(data: bytes, layout: _Layout, good: np.ndarray) -> bytes:
    crlf = _has_crlf(layout, data)
    if len(good) == len(layout.starts) and not crlf:
        return data
    view = memoryview(data)  # slices of a view are not copies; only the join copies
    if crlf:
        return b"\n".join(view[layout.starts[i] : layout.ends[i]] for i in good)
    # Bad records are few: copy the runs of consecutive good records, not each record.
    run_breaks = np.flatnonzero(np.diff(good) != 1) + 1
    runs = zip(good[np.r_[0, run_breaks]], good[np.r_[run_breaks - 1, len(good) - 1]])
    return b"\n".join(view[layout.starts[first] : layout.ends[last]] for first, last in runs)


def _has_crlf(layout: _Layout, data: bytes) -> bool:
    return bool(np.any(layout.ends[:-1] + 1 != layout.starts[1:])) or (
        len(layout.ends) > 0 and layout.ends[-1] < len(data) - 1
    )


def _parse_with_arrow(payload: bytes, column_names, quoting) -> dict[str, pa.Array] | None:
    if quoting == "nul":
        stand_in = next((b for b in _QUOTE_STAND_INS if payload.find(bytes([b])) < 0), None)
        if stand_in is None:
            return None
        if payload.find(b"\0") >= 0:  # a mapped file is read-only: copy only when there is a NUL
            payload = bytes(payload).replace(b"\0", bytes([stand_in]))
        quote_char, double_quote = chr(stand_in), False
    else:
        quote_char, double_quote = '"', True
    rejected = []
    try:
        table = pacsv.read_csv(
            pa.py_buffer(payload),
            read_options=pacsv.ReadOptions(column_names=column_names, use_threads=True),
            parse_options=pacsv.ParseOptions(
                delimiter="\t",
                quote_char=quote_char,
                double_quote=double_quote,
                escape_char=False,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=lambda row: rejected.append(row) or "skip",
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in column_names},
                # Hive writes NULL for null, quoted or not; the reader's own check stops at the
                # first differing byte, unlike a compare after parsing
                null_values=[NULL_LITERAL],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                check_utf8=False,  # parse_export_bytes has validated every record it passes on
            ),
        )
    except pa.ArrowInvalid:
        return None
    if rejected:
        return None
    return {name: table.column(name) for name in column_names}  # chunked: combining would copy


def _parse_with_python(data, layout, good, column_names, quoting) -> dict[str, pa.Array]:
    quote = "\0" if quoting == "nul" else '"'
    values: list[list[str]] = [[] for _ in column_names]
    for i in good:
        record = data[layout.starts[i] : layout.ends[i]].decode("utf-8")
        for col, field in enumerate(_split_fields(record, quote, quoting == "csv")):
            values[col].append(field)
    return {name: pa.array(vals, pa.string()) for name, vals in zip(column_names, values)}


def _split_fields(record: str, quote: str, doubled: bool) -> list[str]:
    # Same quote semantics as the pre-pass (every quote character toggles), so the field count
    # always matches the tab count that marked this record good.
    fields, current, inside, i = [], [], False, 0
    while i < len(record):
        ch = record[i]
        if ch == quote:
            if doubled and inside and record[i + 1 : i + 2] == quote:
                current.append(quote)
                i += 1
            else:
                inside = not inside
        elif ch == "\t" and not inside:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    fields.append("".join(current))
    return fields


def _null_literal_to_null(arr: pa.Array) -> pa.Array:
    # polars compares lengths first; pyarrow's equal scans every long value (300x slower here)
    series = pl.from_arrow(arr)
    return series.set(series == NULL_LITERAL, None).to_arrow().cast(pa.string())


def _show(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace").replace("\0", "\\0")
