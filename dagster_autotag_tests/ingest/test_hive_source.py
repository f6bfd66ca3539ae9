"""HiveExportReader (and its resource, HiveExportSource) against a real HiveServer2 (Spark Thrift Server),
plus their offline behaviour."""

import datetime as dt_
import logging
import traceback
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from dagster_autotag.ingest import hive_client
from dagster_autotag.ingest.hive_client import INVALID_UTF8, HiveExportError, HiveExportReader, rows_to_batch
from dagster_autotag.ingest.source import FILE_COLUMN, LINE_COLUMN, RawBatch, raw_batch_schema
from dagster_autotag.ingest.tables import (
    ASR,
    EXCLUDED_GC,
    EXCLUDED_GRADE,
    EXPORT_TABLES,
    KEPT_DTYPES,
    NEWS_POOL,
    OCR,
    TAG_DIM,
    ExportTable,
)
from dagster_autotag.resources import HiveExportSource, hive_source_from_env
from dagster_autotag_tests.hive_server import HiveServer, free_port, load_rows

DT = "2024-03-15"
EMPTY_DT = "2024-03-16"  # no partition at all
MANY_DT = "2024-03-17"  # 23 ASR rows for the fetch_size test
PASSWORD = "s3cr3t-Hunter2-pw"

# What pyhive escapes (\\ ' CR LF TAB), what Spark would unescape (\\n \\'), % for pyformat.
ODD = "tab\there | nl\nnext | crlf\r\nend | 'single' \"double\" | back\\slash \\n \\t \\' | % %s ;--"
NEW_CAR = ("1001", "新车上市：比亚迪海豹 'Pro' 版", '摘要 "引号" C:\\new\\tab', "12,34", "news", "A", "PGC",
           "2024-03-15 08:00:00")  # fmt: skip
NEWS_ROWS: list[tuple[str | None, ...]] = [
    NEW_CAR,
    NEW_CAR,  # an exact duplicate row: the comparison is a multiset
    ("1002", ODD, "第一行\n第二行", "56", "yichehao_news", None, None, "2024-03-15 09:30:00"),
    ("1003", "谍照曝光", None, "78", "yichehao_video", "Z", "UGC", "2024-03-15 10:00:00"),
    ("1004", "AI 生成", "x", "90", "news", "B", "AGC-XIAOYI", "2024-03-15 11:00:00"),
    ("1005", "AI 生成 2", "y", "91", "news", None, "AGC-XIAOSHA", "2024-03-15 11:05:00"),
    ("1006", "其他类型", "z", "92", "video", "A", "PGC", "2024-03-15 12:00:00"),
    ("1007", '{"k": "值", "n": [1, 2], "esc": "a\\"b"}', "", None, "yichehao_video", "", "", None),
    ("1008", "😀 emoji　全角空格", None, "12", "news", "C", None, "2024-03-15 23:59:59"),
]
ASR_ROWS = [
    ("1007", '[{"text": "大家好，欢迎来到易车", "begin": 0, "end": 1200}]'),
    ("1003", "[]"),
    ("2001", None),
    ("2002", '[{"text": "反斜杠 \\\\ 和 \\"引号\\" 以及\\t制表符"}]'),
]
OCR_ROWS = [
    ("1007", '[{"frame": 1, "text": "新车上市"}, {"frame": 2, "text": "新车上市"}]'),
    ("2003", "raw\ttab and\nnewline"),
    ("2004", None),
]
TAG_ROWS = [
    ("1", "新车资讯", "内容标签", "1", "新车资讯", "1"),
    ("2", "谍照", "内容标签", "1,2", "新车资讯,谍照", "1"),
    ("3", "旧标签", "内容标签", "1,3", "新车资讯,旧标签", "0"),
    ("4", "SUV", "车型标签", "4", "SUV", "1"),
    ("5", "无状态", "内容标签", "5", "无状态", None),
]
ROWS = {"news_pool": NEWS_ROWS, "asr": ASR_ROWS, "ocr": OCR_ROWS, "tag_dim": TAG_ROWS}


def expected_after_filters(table: ExportTable, rows) -> list[tuple]:
    """The export SQL's filters, restated in Python."""
    if table.name == "news_pool":
        return [
            r
            for r in rows
            if r[4] in KEPT_DTYPES
            and (r[5] is None or r[5] != EXCLUDED_GRADE)
            and (r[6] is None or r[6] not in EXCLUDED_GC)
        ]
    if table.name == "tag_dim":
        return [r for r in rows if r[2] == "内容标签" and r[5] == "1"]
    return list(rows)


def collect(source: HiveExportReader, table: ExportTable, dt: str):
    batches: list[RawBatch] = list(source.iter_batches(table, dt))
    schema = raw_batch_schema(table)
    for b in batches:
        assert b.rows.schema == schema
    data = pa.concat_tables([b.rows for b in batches]) if batches else schema.empty_table()
    rows = list(zip(*(data.column(n).to_pylist() for n in table.column_names), strict=True))
    return rows, data, batches


def source_for(server: HiveServer, **kwargs) -> HiveExportReader:
    return HiveExportReader(host=server.host, port=server.port, **kwargs)


@pytest.fixture(scope="module")
def loaded(hive_server: HiveServer) -> HiveServer:
    with hive_server.connect() as conn:
        # A first, different load of the same partition: load_rows must replace it, not append.
        load_rows(conn, NEWS_POOL, DT, NEWS_ROWS[:3])
        for name, rows in ROWS.items():
            load_rows(conn, EXPORT_TABLES[name], DT, rows)
        many = [(f"v{i:03d}", f'[{{"text": "第{i}句"}}]') for i in range(23)]
        load_rows(conn, ASR, MANY_DT, many)
    return hive_server


# --- against the real server -------------------------------------------------------------------


@pytest.mark.hive
@pytest.mark.parametrize("name", list(EXPORT_TABLES))
def test_round_trip_after_filters(loaded: HiveServer, name: str):
    table = EXPORT_TABLES[name]
    rows, data, batches = collect(source_for(loaded), table, DT)
    assert Counter(rows) == Counter(expected_after_filters(table, ROWS[name]))
    assert set(data.column(FILE_COLUMN).to_pylist()) == {f"hive://{loaded.host}:{loaded.port}/{table.hive_table}"}
    assert sorted(data.column(LINE_COLUMN).to_pylist()) == list(range(1, len(rows) + 1))
    assert all(not b.quarantine for b in batches)


@pytest.mark.hive
def test_filters_drop_what_the_seed_drops(loaded: HiveServer):
    source = source_for(loaded)
    news, _, _ = collect(source, NEWS_POOL, DT)
    ids = Counter(r[0] for r in news)
    assert ids == Counter({"1001": 2, "1002": 1, "1007": 1, "1008": 1})  # duplicates kept
    assert "1003" not in ids  # grade Z
    assert "1004" not in ids and "1005" not in ids  # excluded gc
    assert "1006" not in ids  # other dtype
    by_id = {r[0]: r for r in news}
    assert by_id["1002"][5] is None and by_id["1002"][6] is None  # NULL grade/gc kept
    assert by_id["1007"][5] == "" and by_id["1007"][7] is None  # '' is not NULL
    assert by_id["1002"][1] == ODD  # tabs, newlines, CR, quotes, backslashes, % survive

    tags, _, _ = collect(source, TAG_DIM, DT)
    assert sorted(r[0] for r in tags) == ["1", "2"]  # inactive, non-content, NULL status gone
    assert {r[5] for r in tags} == {"1"}  # INT status comes back as a string


@pytest.mark.hive
def test_batches_follow_fetch_size(loaded: HiveServer):
    _, data, batches = collect(source_for(loaded, fetch_size=5), ASR, MANY_DT)
    assert [b.rows.num_rows for b in batches] == [5, 5, 5, 5, 3]
    assert data.column(LINE_COLUMN).to_pylist() == list(range(1, 24))  # continuous across batches
    assert sorted(data.column("video_id").to_pylist()) == [f"v{i:03d}" for i in range(23)]


@pytest.mark.hive
def test_empty_partition_yields_no_rows(loaded: HiveServer):
    rows, _, batches = collect(source_for(loaded), NEWS_POOL, EMPTY_DT)
    assert rows == [] and batches == []


@pytest.mark.hive
def test_load_rows_is_idempotent(loaded: HiveServer):
    with loaded.connect() as conn:
        load_rows(conn, OCR, DT, OCR_ROWS)  # a second identical load
    rows, _, _ = collect(source_for(loaded), OCR, DT)
    assert Counter(rows) == Counter(OCR_ROWS)


@pytest.mark.hive
def test_non_string_values_and_invalid_utf8(hive_server: HiveServer, tmp_path: Path):
    """INT, BINARY and TIMESTAMP results as pyhive returns them; bad UTF-8 goes to quarantine."""
    (tmp_path / "news_pool.sql").write_text(
        "-- 100% synthetic: typed values straight from Spark\n"
        "SELECT id, title, CAST(NULL AS STRING), 'a,b', 'news', NULL, NULL, ts\n"
        "FROM VALUES (1, unhex('E4BDA0E5A5BD'), TIMESTAMP'2024-03-15 08:00:00'),\n"
        "            (2, unhex('FF41'), TIMESTAMP'2024-03-15 08:00:01'),\n"
        "            (3, CAST(NULL AS BINARY), TIMESTAMP'2024-03-15 08:00:02.250')\n"
        "  AS t(id, title, ts)\n"
        "WHERE %(dt)s IS NOT NULL ORDER BY id;\n",
        encoding="utf-8",
    )
    rows, data, batches = collect(source_for(hive_server, sql_dir=str(tmp_path)), NEWS_POOL, DT)
    assert rows == [
        ("1", "你好", None, "a,b", "news", None, None, "2024-03-15 08:00:00"),
        ("3", None, None, "a,b", "news", None, None, "2024-03-15 08:00:02.25"),
    ]
    assert data.column(LINE_COLUMN).to_pylist() == [1, 3]
    [q] = [q for b in batches for q in b.quarantine]
    assert (q.line, q.reason) == (2, INVALID_UTF8)
    assert q.raw.startswith("2\t\\xffA\tNULL\ta,b")
    assert q.file == f"hive://{hive_server.host}:{hive_server.port}/{NEWS_POOL.hive_table}"


@pytest.mark.hive
def test_sql_with_wrong_column_count_fails(hive_server: HiveServer, tmp_path: Path):
    (tmp_path / "asr.sql").write_text("SELECT 'v1' WHERE %(dt)s IS NOT NULL", encoding="utf-8")
    with pytest.raises(HiveExportError, match="returns 1 columns, expected 2"):
        list(source_for(hive_server, sql_dir=str(tmp_path)).iter_batches(ASR, DT))


@pytest.mark.hive
def test_password_auth_never_logged(loaded: HiveServer, caplog: pytest.LogCaptureFixture):
    # Spark's Thrift Server runs with authentication NONE: SASL PLAIN accepts any password, so
    # this exercises the code path that sends one (CUSTOM) without a real LDAP.
    caplog.set_level(logging.DEBUG)
    source = source_for(loaded, auth="CUSTOM", password=PASSWORD)
    rows, _, _ = collect(source, TAG_DIM, DT)
    assert len(rows) == 2
    assert f"{loaded.host}:{loaded.port}" in caplog.text and "2 rows" in caplog.text
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(source) and PASSWORD not in str(source)
    resource = HiveExportSource(host=loaded.host, port=loaded.port, auth="CUSTOM", password=PASSWORD)
    assert PASSWORD not in repr(resource) and PASSWORD not in str(resource)


@pytest.mark.hive
def test_env_configured_source_in_a_dagster_run(
    loaded: HiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv("AUTOTAG_HIVE_HOST", loaded.host)
    monkeypatch.setenv("AUTOTAG_HIVE_PORT", str(loaded.port))
    monkeypatch.setenv("AUTOTAG_HIVE_AUTH", "LDAP")
    monkeypatch.setenv("AUTOTAG_HIVE_PASSWORD", PASSWORD)
    caplog.set_level(logging.DEBUG)

    @dg.asset
    def tags(hive: HiveExportSource) -> dg.MaterializeResult:
        rows = sum(b.rows.num_rows for b in hive.reader().iter_batches(TAG_DIM, DT))
        return dg.MaterializeResult(metadata={"rows": rows})

    # The reader logs to a standard-library logger; an instance that manages it (dagster.yaml
    # `python_logs: managed_python_loggers: [dagster_autotag]`) records its messages in the run.
    instance = dg.DagsterInstance.ephemeral(settings={"python_logs": {"managed_python_loggers": ["dagster_autotag"]}})
    result = dg.materialize([tags], resources={"hive": hive_source_from_env()}, instance=instance)
    assert result.success
    [mat] = result.asset_materializations_for_node("tags")
    assert mat.metadata["rows"].value == 2
    run_log = "\n".join(entry.user_message for entry in instance.all_logs(result.run_id))
    assert f"connected to HiveServer2 {loaded.host}:{loaded.port}" in run_log
    assert PASSWORD not in caplog.text
    assert PASSWORD not in run_log
    assert PASSWORD not in "\n".join(str(e) for e in result.all_events)


GEN_DT = "2024-03-18"


@pytest.fixture(scope="module")
def generated_day(hive_server: HiveServer):
    """A generated day (items=200, row-level dirt included) loaded into Hive."""
    from dagster_autotag.sample import generator

    day = generator.generate_day(GEN_DT, items=200, seed=11, dirt=True)
    with hive_server.connect() as conn:
        for name, rows in day.rows.items():
            load_rows(conn, EXPORT_TABLES[name], GEN_DT, rows)
    return day


@pytest.mark.hive
def test_generated_day_round_trips(hive_server: HiveServer, generated_day):
    source = source_for(hive_server)
    for name, table in EXPORT_TABLES.items():
        rows, _, batches = collect(source, table, GEN_DT)
        expected = expected_after_filters(table, generated_day.rows[name])
        assert Counter(rows) == Counter(expected), name
        assert not any(b.quarantine for b in batches)
    # the generator's filter dirt (other dtype, grade Z, excluded gc) really was filtered
    news = generated_day.rows["news_pool"]
    assert len(expected_after_filters(NEWS_POOL, news)) < len(news)


@pytest.mark.hive
def test_hive_and_landing_sources_agree(hive_server: HiveServer, generated_day, tmp_path: Path):
    """Same day through both sources and the shared ingest: identical typed rows and quarantine."""
    import polars as pl

    from dagster_autotag.ingest.landing import LandingExportReader
    from dagster_autotag.ingest.raw import ingest_partition
    from dagster_autotag.sample.generator import write_landing

    write_landing(tmp_path / "landing", generated_day, file_dirt=False)
    sources = {
        "hive": source_for(hive_server, fetch_size=97),
        "landing": LandingExportReader(tmp_path / "landing"),
    }
    for table in EXPORT_TABLES.values():
        out = {}
        for kind, source in sources.items():
            report = ingest_partition(source, table, GEN_DT, tmp_path / f"lake_{kind}")
            data = pl.read_parquet(report.path).select(table.column_names)
            out[kind] = (data.sort(table.column_names, nulls_last=True), report.quarantined)
        hive_rows, hive_q = out["hive"]
        landing_rows, landing_q = out["landing"]
        assert hive_rows.equals(landing_rows, null_equal=True), table.name
        assert hive_q == landing_q, table.name

    # ... and the clean layer built on each is the same, although Hive returns rows in another order
    from dagster_autotag.clean.news import build_news_items
    from dagster_autotag.clean.tags import build_tags
    from dagster_autotag.clean.video import build_video_asr, build_video_ocr
    from dagster_autotag.lake import read_partition

    for raw_table, build, key in (
        ("news_pool", lambda lf: build_news_items(lf).items, "itemid"),
        ("asr", lambda lf: build_video_asr(lf).videos, "video_id"),
        ("ocr", lambda lf: build_video_ocr(lf).videos, "video_id"),
        ("tag_dim", lambda lf: build_tags(lf).tags, "tag_id"),
    ):
        hive_clean, landing_clean = (
            build(read_partition(tmp_path / f"lake_{kind}", "raw", raw_table, GEN_DT)).sort(key) for kind in sources
        )
        assert hive_clean.height > 0, raw_table
        assert hive_clean.equals(landing_clean, null_equal=True), raw_table


# --- without a server --------------------------------------------------------------------------


def test_connection_failure_retries_with_backoff_then_names_host_and_table(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    sleeps: list[float] = []
    monkeypatch.setattr(hive_client, "_sleep", sleeps.append)
    caplog.set_level(logging.DEBUG)
    port = free_port()  # nothing listens there
    source = HiveExportReader(
        host="127.0.0.1", port=port, auth="LDAP", password=PASSWORD,
        connect_retries=3, retry_backoff_s=0.01,
    )  # fmt: skip
    with pytest.raises(HiveExportError) as info:
        list(source.iter_batches(ASR, DT))
    attempts = [r for r in caplog.records if "connection attempt" in r.getMessage()]
    assert len(attempts) == 4  # 1 + connect_retries
    assert sleeps == pytest.approx([0.01, 0.02, 0.04])
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and ASR.hive_table in message
    full = "".join(traceback.format_exception(info.value))
    for text in (full, caplog.text, repr(source), str(source)):
        assert PASSWORD not in text


def test_rejected_login_is_not_retried(monkeypatch: pytest.MonkeyPatch):
    from thrift.transport.TTransport import TTransportException

    calls: list[dict] = []

    def reject(**kwargs):
        calls.append(kwargs)
        raise TTransportException(TTransportException.NOT_OPEN, "Bad status: 4 (b'Error validating the login')")

    monkeypatch.setattr(hive_client.hive, "connect", reject)
    monkeypatch.setattr(hive_client, "_sleep", lambda s: pytest.fail("must not retry"))
    source = HiveExportReader(host="hive.example", port=10001, auth="LDAP", password=PASSWORD)
    with pytest.raises(HiveExportError, match="rejected the login") as info:
        next(source.iter_batches(TAG_DIM, DT))
    assert len(calls) == 1 and calls[0]["password"] == PASSWORD and calls[0]["auth"] == "LDAP"
    assert "hive.example:10001" in str(info.value) and TAG_DIM.hive_table in str(info.value)
    assert PASSWORD not in "".join(traceback.format_exception(info.value))


def test_password_only_sent_for_ldap_and_custom(monkeypatch: pytest.MonkeyPatch):
    seen: list[dict] = []

    def fake_connect(**kwargs):
        seen.append(kwargs)
        raise ConnectionRefusedError("nope")

    monkeypatch.setattr(hive_client.hive, "connect", fake_connect)
    for auth in ("NONE", "NOSASL", "LDAP", "CUSTOM"):
        source = HiveExportReader(host="h", auth=auth, password=PASSWORD, connect_retries=0, retry_backoff_s=0)
        with pytest.raises(HiveExportError):
            next(source.iter_batches(ASR, DT))
    assert [("password" in k, k["auth"]) for k in seen] == [
        (False, "NONE"), (False, "NOSASL"), (True, "LDAP"), (True, "CUSTOM"),
    ]  # fmt: skip


@pytest.mark.parametrize("bad", ["2024-1-1", "2024-01-01' OR 1=1 --", "20240101", "", None])
def test_invalid_partition_rejected_before_connecting(monkeypatch: pytest.MonkeyPatch, bad):
    def no_connect(*args, **kwargs):
        raise AssertionError("must not connect")

    monkeypatch.setattr(hive_client.hive, "connect", no_connect)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        next(HiveExportReader(host="127.0.0.1").iter_batches(NEWS_POOL, bad))


def test_password_modes_need_a_password_and_do_not_retry(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(hive_client, "_sleep", lambda s: pytest.fail("must not retry"))
    with pytest.raises(ValueError, match="needs a password"):
        next(HiveExportReader(host="127.0.0.1", auth="LDAP").iter_batches(ASR, DT))


def test_env_source_hides_password(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTOTAG_HIVE_HOST", "hive.example")
    monkeypatch.setenv("AUTOTAG_HIVE_PASSWORD", PASSWORD)
    for var in ("AUTOTAG_HIVE_PORT", "AUTOTAG_HIVE_USER", "AUTOTAG_HIVE_AUTH"):
        monkeypatch.delenv(var, raising=False)
    source = hive_source_from_env().process_config_and_initialize()
    assert (source.host, source.port, source.username, source.auth) == (
        "hive.example", 10000, "autotag", "NONE",
    )  # fmt: skip
    assert source.password == PASSWORD
    assert PASSWORD not in repr(source) and PASSWORD not in str(source)
    reader = source.reader()
    assert reader == HiveExportReader(host="hive.example", password=PASSWORD)
    assert PASSWORD not in repr(reader) and PASSWORD not in str(reader)
    assert reader.source_name == "hive"


def test_rows_to_batch_converts_and_quarantines():
    table = TAG_DIM
    rows = [
        (1, "新", b"\xe5\x86\x85", None, dt_.datetime(2024, 3, 15, 8, 0, 0), 1),
        (2, "x", b"\xff", "p", "q", 0),
        (3, "y", "z", "p", "q"),  # wrong width
        (4, True, 1.5, dt_.date(2024, 3, 15), dt_.datetime(2024, 3, 15, 8, 0, 0, 500_000), None),
    ]
    batch = rows_to_batch(table, rows, "hive://h:1/t", first_line=11)
    assert batch.rows.schema == raw_batch_schema(table)
    assert batch.rows.to_pylist() == [
        {"id": "1", "tag_name": "新", "tag_type_name": "内", "tag_path": None,
         "tag_path_name": "2024-03-15 08:00:00", "status": "1", "_file": "hive://h:1/t",
         "_line": 11},
        {"id": "4", "tag_name": "true", "tag_type_name": "1.5", "tag_path": "2024-03-15",
         "tag_path_name": "2024-03-15 08:00:00.5", "status": None, "_file": "hive://h:1/t",
         "_line": 14},
    ]  # fmt: skip
    assert [(q.line, q.reason) for q in batch.quarantine] == [
        (12, INVALID_UTF8),
        (13, "expected 6 columns, got 5"),
    ]
    assert batch.quarantine[0].raw == "2\tx\t\\xff\tp\tq\t0"
