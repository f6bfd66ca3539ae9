"""A tiny, independent reader of Hive tsv2 export bytes for the generator's tests.

Understands both quoting modes of ingest/tsv_format.py: `nul` (a value holding a tab/newline is
wrapped in NUL bytes) and `csv` (wrapped in `"` with `""`). Deliberately simple and slow-ish; the
production reader is ingest/tsv_export.py.
"""

import re

_FIELD = {
    "nul": re.compile(rb"(\x00[^\x00]*\x00|[^\t\n\x00]*)([\t\n])"),
    "csv": re.compile(rb'("(?:[^"]|"")*"|[^\t\n"]*)([\t\n])'),
}


def _value(raw: bytes, quoting: str) -> str | None:
    if quoting == "nul" and raw[:1] == b"\0":
        return raw[1:-1].decode("utf-8")
    if quoting == "csv" and raw[:1] == b'"':
        return raw[1:-1].replace(b'""', b'"').decode("utf-8")
    text = raw.decode("utf-8")
    return None if text == "NULL" else text


def read_tsv2(data: bytes, ncols: int, quoting: str = "nul") -> tuple[list[tuple[str | None, ...]], list[bytes]]:
    """(good rows, raw bad records): a record is bad with the wrong field count or invalid UTF-8."""
    pattern = _FIELD[quoting]
    rows: list[tuple[str | None, ...]] = []
    bad: list[bytes] = []
    fields: list[bytes] = []
    start = pos = 0
    while pos < len(data):
        m = pattern.match(data, pos)
        if m is None:
            raise ValueError(f"unparsable bytes at offset {pos}: {data[pos : pos + 40]!r}")
        fields.append(m.group(1))
        pos = m.end()
        if m.group(2) == b"\n":
            try:
                if len(fields) != ncols:
                    raise ValueError("column count")
                rows.append(tuple(_value(f, quoting) for f in fields))
            except (ValueError, UnicodeDecodeError):
                bad.append(data[start : pos - 1])
            fields = []
            start = pos
    if fields:
        raise ValueError("file does not end with a newline")
    return rows, bad
