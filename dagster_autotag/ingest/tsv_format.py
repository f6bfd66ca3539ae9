"""Writing values the way `hive -e … --outputformat=tsv2 --showHeader=false` (or beeline) does.

Used by the sample generator and tests; the reader lives in tsv_export.py.
- `nul` (Hive's default, disable.quoting.for.sv=true): a value holding a tab or newline is emitted
  raw, wrapped in NUL bytes.
- `csv` (quoting enabled): such a value (or one holding a quote) is wrapped in `"` with `""`.
NULL is printed as the literal `NULL` in both.
"""

from collections.abc import Iterable, Sequence

NULL_LITERAL = "NULL"
QUOTING_MODES = ("nul", "csv")


def format_value(value: object, quoting: str = "nul") -> str:
    if value is None:
        return NULL_LITERAL
    text = str(value)
    if quoting == "nul":
        return f"\0{text}\0" if ("\t" in text or "\n" in text or "\r" in text) else text
    if quoting == "csv":
        if any(ch in text for ch in '\t\n\r"'):
            return '"' + text.replace('"', '""') + '"'
        return text
    raise ValueError(f"unknown quoting mode {quoting!r}; expected one of {QUOTING_MODES}")


def format_row(values: Sequence[object], quoting: str = "nul") -> str:
    return "\t".join(format_value(v, quoting) for v in values) + "\n"


def format_rows(rows: Iterable[Sequence[object]], quoting: str = "nul") -> str:
    return "".join(format_row(r, quoting) for r in rows)
