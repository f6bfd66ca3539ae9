"""The Hive tsv2 reader against the shapes real exports have, and the bad lines they sometimes hold."""

import pytest

from dagster_autotag.ingest.tsv_export import parse_export_bytes, read_export_file
from dagster_autotag.ingest.tsv_format import format_row, format_rows

COLS = ["id", "text", "extra"]


def parse(data: bytes, quoting: str = "nul"):
    batch = parse_export_bytes(data, COLS, quoting, "f.tsv")
    return batch.rows.to_pylist(), batch.quarantine


@pytest.mark.parametrize("quoting", ["nul", "csv"])
def test_values_with_tabs_newlines_quotes_and_nulls_round_trip(quoting):
    rows = [
        ("1", "标题\t带制表符", "第一行\n第二行"),
        ("2", None, ""),
        ("3", 'he said "hi"', "\\backslash"),
        ("4", "NULLish", "多行\r\n回车"),
        ("5", '"starts with quote', "普通"),
    ]
    got, quarantine = parse(format_rows(rows, quoting).encode(), quoting)
    assert quarantine == []
    assert [(r["id"], r["text"], r["extra"]) for r in got] == rows


def test_line_numbers_count_physical_lines_of_multiline_values():
    data = format_rows([("1", "a\nb\nc", "x"), ("2", "y", "z")]).encode()
    got, _ = parse(data)
    assert [r["_line"] for r in got] == [1, 4]
    assert {r["_file"] for r in got} == {"f.tsv"}


def test_malformed_lines_are_quarantined_with_line_and_reason_and_the_rest_survive():
    data = (
        format_row(("1", "ok", "x")).encode()
        + b"2\ttoo few\n"
        + b"3\ta\tb\tc\n"
        + b"\n"
        + b"4\t\xff\xfe broken utf8\tx\n"
        + format_row(("5", "still ok", "y")).encode()
    )
    got, quarantine = parse(data)
    assert [r["id"] for r in got] == ["1", "5"]
    assert [r["_line"] for r in got] == [1, 6]
    assert [(q.line, q.reason) for q in quarantine] == [
        (2, "expected 3 columns, found 2"),
        (3, "expected 3 columns, found 4"),
        (4, "empty line"),
        (5, "invalid UTF-8"),
    ]
    assert quarantine[0].raw == "2\ttoo few"
    assert "\\xff" in quarantine[3].raw


def test_missing_trailing_newline_crlf_and_empty_file():
    got, q = parse(b"1\ta\tb\r\n2\tc\td")
    assert q == [] and [(r["id"], r["extra"]) for r in got] == [("1", "b"), ("2", "d")]
    got, q = parse(b"")
    assert got == [] and q == []


def test_nul_file_containing_every_stand_in_byte_still_parses():
    # pyarrow cannot quote with NUL; when no stand-in byte is free the pure-Python path takes over.
    control = "".join(chr(c) for c in range(1, 26) if c not in (9, 10, 13))
    rows = [("1", "x\ty", control), ("2", "z", "w")]
    got, quarantine = parse(format_rows(rows).encode())
    assert quarantine == []
    assert [(r["id"], r["text"], r["extra"]) for r in got] == rows


def test_a_stray_quote_quarantines_its_line_and_the_following_lines_are_read():
    # With quoting enabled Hive quotes such values; a file that breaks the rule has a quote inside
    # an unquoted value. It opens nothing: its line is quarantined, the next one is a row again.
    got, quarantine = parse(b'0\tfine\tx\n1\tab"c\td\n2\te\tf\n', "csv")
    assert [r["id"] for r in got] == ["0", "2"]
    assert [(q.line, q.reason) for q in quarantine] == [(2, "stray quote inside column 2")]


# The file: a NUL opens a value and never closes. Only its line is lost.
@pytest.mark.parametrize(
    ("data", "columns", "column"),
    [
        (b"1\ta\n2\t\x00bad\n3\tc\n4\td\n", ["id", "v"], 2),  # the last column
        (b"1\ta\tx\n2\t\x00bad\tx\n3\tc\tx\n4\td\tx\n", ["id", "v", "w"], 2),  # a middle column
        (b"1\ta\tx\n2\tb\t\x00bad\n3\tc\tx\n4\td\tx\n", ["id", "v", "w"], 3),
    ],
)
@pytest.mark.parametrize("quoting", ["nul", "csv"])
def test_an_unclosed_quote_costs_only_the_line_that_opened_it(data, columns, column, quoting):
    if quoting == "csv":
        data = data.replace(b"\x00", b'"')
    batch = parse_export_bytes(data, columns, quoting, "f")
    assert [(r["id"], r["_line"]) for r in batch.rows.to_pylist()] == [("1", 1), ("3", 3), ("4", 4)]
    assert [r[columns[1]] for r in batch.rows.to_pylist()] == ["a", "c", "d"]
    name = "NUL byte" if quoting == "nul" else "quote"
    assert [(q.line, q.reason) for q in batch.quarantine] == [
        (2, f"value opened by a {name} in column {column} is not closed before the end of the file")
    ]


def test_an_unclosed_nul_does_not_pair_with_the_next_legit_quoted_value():
    # The next NUL opens a legit multi-line value (it does not end a field): no partner for line 2.
    rows = [("3", "c", "x"), ("4", "多\n行", "x"), ("5", "q", "带\t制表符")]
    data = format_row(("1", "a", "x")).encode() + b"2\t\x00bad\tx\n" + format_rows(rows).encode()
    got, quarantine = parse(data)
    assert [(r["id"], r["text"], r["extra"]) for r in got] == [("1", "a", "x"), *rows]
    assert [(q.line, q.raw) for q in quarantine] == [(2, "2\t\\0bad\tx")]
    assert quarantine[0].reason == "value opened by a NUL byte in column 2 is not closed where a value ends"


def test_a_value_longer_than_the_limits_is_judged_unclosed():
    # A later value starting with a line break could close the broken one: the limits stop that.
    legit = format_rows([("1", "两\n行", "x")]).encode()
    tail = b"3\tc\tx\n" + format_rows([("4", "\n开头换行", "y")]).encode()
    data = legit + b"2\t\x00bad\tx\n" + tail
    swallowed = parse_export_bytes(data, COLS, "nul", "f", max_value_lines=10)
    assert [r["id"] for r in swallowed.rows.to_pylist()] == ["1"]  # too generous: 2..4 became one value
    for limits in ({"max_value_lines": 2}, {"max_value_bytes": 13}):
        batch = parse_export_bytes(data, COLS, "nul", "f", **limits)
        assert [(r["id"], r["text"]) for r in batch.rows.to_pylist()] == [
            ("1", "两\n行"),
            ("3", "c"),
            ("4", "\n开头换行"),
        ]
        assert [q.line for q in batch.quarantine] == [3]
        assert "is not closed within" in batch.quarantine[0].reason
    with pytest.raises(ValueError, match="max_value_lines"):
        parse_export_bytes(data, COLS, "nul", "f", max_value_lines=0)


def test_read_export_file_labels_rows_with_the_given_file_name(tmp_path):
    path = tmp_path / "000000_0"
    path.write_bytes(format_rows([("1", "a", "b")]).encode())
    batch = read_export_file(path, COLS, "nul", "news_pool/dt=2024-05-01/000000_0")
    assert batch.rows.column("_file").to_pylist() == ["news_pool/dt=2024-05-01/000000_0"]


def test_unknown_quoting_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="quoting"):
        parse_export_bytes(b"1\ta\tb\n", COLS, "tsv", "f")


def test_mapped_files_parse_like_bytes_including_empty_and_nul_quoted_ones(tmp_path):
    # read_export_file maps the file read-only: NUL quotes must be swapped in a copy, not in place
    data = format_rows([("1", "带\t制表符", "x"), ("2", "多\n行", "y")]).encode() + b"3\tbad\n"
    assert b"\0" in data
    for name, content in (("empty", b""), ("nul", data)):
        path = tmp_path / name
        path.write_bytes(content)
        mapped = read_export_file(path, COLS, "nul", "f.tsv")
        assert mapped.rows.to_pylist() == parse_export_bytes(content, COLS, "nul", "f.tsv").rows.to_pylist()
        assert path.read_bytes() == content
    assert [r["text"] for r in mapped.rows.to_pylist()] == ["带\t制表符", "多\n行"]
    assert [(q.line, q.reason) for q in mapped.quarantine] == [(4, "expected 3 columns, found 2")]


def test_many_records_across_scan_blocks_and_utf8_groups(monkeypatch):
    # Bytes are scanned in blocks and UTF-8 is validated in groups of record blocks: records and
    # bad bytes that straddle those boundaries come out as they do in one piece.
    rows = [
        (str(i), f"第{i}条\t正文" if i % 7 == 0 else f"第{i}条", "多\n行" if i % 11 == 0 else "x") for i in range(2100)
    ]
    lines = [format_row(r).encode() for r in rows]
    for i in (3, 1100, 2099):
        lines[i] = f"{i}\t坏".encode() + b"\xff\xfe" + b"\tx\n"
    data = b"".join(lines)
    whole = parse(data)
    monkeypatch.setattr("dagster_autotag.ingest.tsv_export._SCAN_BLOCK", 61)
    monkeypatch.setattr("dagster_autotag.ingest.tsv_export._UTF8_GROUP_BLOCKS", 3)
    assert parse(data) == whole
    got, quarantine = whole
    assert len(got) == 2097 and [q.reason for q in quarantine] == ["invalid UTF-8"] * 3
    bad_lines = [q.line for q in quarantine]
    assert [next(r["id"] for r in got if r["_line"] > line) for line in bad_lines[:2]] == ["4", "1101"]
