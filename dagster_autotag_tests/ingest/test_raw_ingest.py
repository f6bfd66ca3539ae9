"""Landing files → typed raw Parquet + quarantine: filters, row contract, atomic idempotent writes."""

import sys
import threading

import polars as pl
import pyarrow.parquet as pq
import pytest

from dagster_autotag import lake as lake_module
from dagster_autotag.ingest.landing import LandingExportReader, MissingLandingPartition
from dagster_autotag.ingest.raw import ingest_partition
from dagster_autotag.ingest.tables import NEWS_POOL, TAG_DIM
from dagster_autotag.ingest.tsv_format import format_rows
from dagster_autotag.ingest.typecast import typed_schema

DT = "2024-05-01"
GOOD = ("100", "<b>宝马X5</b>谍照", "摘要", "30101,30102", "news", "A", "PGC", "2024-05-01 08:00:00")


def land(root, table, rows, extra: bytes = b"", name="000000_0"):
    folder = root / table / f"dt={DT}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(format_rows(rows).encode() + extra)
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def news_rows():
    return [
        GOOD,
        ("101", "t", "s", "30101", "news", "Z", "PGC", "2024-05-01 08:00:00"),  # grade Z
        ("102", "t", "s", "30101", "news", "A", "AGC-XIAOYI", "2024-05-01 08:00:00"),  # excluded gc
        ("103", "t", "s", "30101", "koubei", "A", "PGC", "2024-05-01 08:00:00"),  # other dtype
        ("104", "t", "s", None, "yichehao_video", None, None, "2024-05-01 23:59:59"),  # NULL grade/gc kept
        (None, "t", "s", "30101", "news", "A", "PGC", "2024-05-01 08:00:00"),  # missing itemid
        ("  ", "t", "s", "30101", "news", "A", "PGC", "2024-05-01 08:00:00"),  # blank itemid
        ("105", "t", "s", "30101", "news", "A", "PGC", "2024-13-45 99:00:00"),  # bad timestamp
        ("106", "t", "s", "30101", "news", "A", "PGC", "昨天"),  # bad timestamp
        ("107", "t", "s", "30101", "news", "A", "PGC", None),  # NULL time is allowed
    ]


def test_filters_contract_and_quarantine(tmp_path):
    land(tmp_path / "landing", "news_pool", news_rows(), extra=b"108\tshort line\n")
    source = LandingExportReader(tmp_path / "landing")
    report = ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")

    raw = pl.read_parquet(report.path / "part-0.parquet")
    assert raw["itemid"].to_list() == ["100", "104", "107"]
    assert raw["title"][0] == "<b>宝马X5</b>谍照"  # raw keeps the export's text; clean normalises
    assert str(raw["create_time"][0]) == "2024-05-01 08:00:00+08:00"
    assert raw["create_time"][2] is None
    assert raw["_source"].unique().to_list() == ["landing"]
    assert raw["_line"].to_list() == [1, 5, 10]
    assert pq.read_schema(report.path / "part-0.parquet").equals(typed_schema(NEWS_POOL))
    assert "dt" not in raw.columns  # the partition value lives in the directory name only

    assert dict(report.filtered) == {"recommend_grade Z": 1, "excluded gc": 1, "dtype not exported": 1}
    quarantine = pl.read_parquet(tmp_path / "lake/quarantine/news_pool" / f"dt={DT}" / "part-0.parquet")
    assert sorted(zip(quarantine["_line"], quarantine["reason"])) == [
        (6, "missing itemid"),
        (7, "missing itemid"),
        (8, "unparsable create_time"),
        (9, "unparsable create_time"),
        (11, "expected 8 columns, found 2"),
    ]
    assert report.rows_in == 11 and report.rows_out == 3 and report.quarantined == 5
    # nothing silently dropped: every record is kept, filtered (counted) or quarantined (stored)
    assert report.rows_out + sum(report.filtered.values()) + report.quarantined == report.rows_in


def test_tag_dim_keeps_active_content_tags_only(tmp_path):
    rows = [
        ("30100", "新车资讯", "内容标签", "30100", "新车资讯", "1"),
        ("30199", "旧标签", "内容标签", "30199", "旧标签", "0"),
        ("90001", "宝马", "品牌标签", "90001", "宝马", "1"),
        ("30101", "谍照", "内容标签", "30100,30101", "新车资讯,谍照", "x"),
    ]
    land(tmp_path / "landing", "tag_dim", rows)
    report = ingest_partition(LandingExportReader(tmp_path / "landing"), TAG_DIM, DT, tmp_path / "lake")
    raw = pl.read_parquet(report.path / "part-0.parquet")
    assert raw["id"].to_list() == ["30100"] and raw["status"].to_list() == [1]
    # status 'x' is not 1, exactly as Hive's `status = 1` treats it: filtered, not quarantined
    assert dict(report.filtered) == {"not a content tag": 1, "inactive tag": 2}


def test_rerun_is_byte_identical_and_replaces_the_partition(tmp_path):
    land(tmp_path / "landing", "news_pool", news_rows())
    source = LandingExportReader(tmp_path / "landing")
    first = ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")
    before = (first.path / "part-0.parquet").read_bytes()
    second = ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")
    assert (second.path / "part-0.parquet").read_bytes() == before
    assert sorted(p.name for p in second.path.iterdir()) == ["part-0.parquet"]
    assert list((tmp_path / "lake" / "_staging").iterdir()) == []

    land(tmp_path / "landing", "news_pool", [GOOD])  # a corrected export replaces the old one
    third = ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")
    assert pl.read_parquet(third.path / "part-0.parquet")["itemid"].to_list() == ["100"]
    assert third.quarantined == 0
    quarantine = pl.read_parquet(tmp_path / "lake/quarantine/news_pool" / f"dt={DT}" / "part-0.parquet")
    assert quarantine.height == 0  # the old run's bad rows are gone too


def test_crash_mid_write_leaves_the_previous_version(tmp_path, monkeypatch):
    land(tmp_path / "landing", "news_pool", news_rows())
    source = LandingExportReader(tmp_path / "landing")
    good = ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")
    before = (good.path / "part-0.parquet").read_bytes()

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("dagster_autotag.ingest.raw.type_batch", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")
    assert (good.path / "part-0.parquet").read_bytes() == before
    assert list((tmp_path / "lake" / "_staging").iterdir()) == []


def test_swap_without_renameat2_falls_back_to_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(lake_module, "_rename_exchange", lambda a, b: False)
    lake = tmp_path / "lake"
    lake_module.write_partition(lake, "raw", "t", DT, pl.DataFrame({"a": [1]}))
    path = lake_module.write_partition(lake, "raw", "t", DT, pl.DataFrame({"a": [2]}))
    assert pl.read_parquet(path / "part-0.parquet")["a"].to_list() == [2]
    assert [p.name for p in (lake / "_staging").iterdir()] == []


def test_missing_landing_partition_names_the_expected_path(tmp_path):
    source = LandingExportReader(tmp_path / "landing")
    with pytest.raises(MissingLandingPartition, match=r"landing/news_pool/dt=2024-05-01"):
        ingest_partition(source, NEWS_POOL, DT, tmp_path / "lake")


@pytest.mark.parametrize("dt", ["2024-5-1", "2024-05-01; DROP TABLE x", "../2024-05-01", "2024-13-01"])
def test_partition_value_is_validated(tmp_path, dt):
    source = LandingExportReader(tmp_path / "landing")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        ingest_partition(source, NEWS_POOL, dt, tmp_path / "lake")


def test_several_files_and_markers(tmp_path):
    folder = land(tmp_path / "landing", "news_pool", [GOOD], name="000000_0")
    (folder / "000001_0").write_bytes(format_rows([("200",) + GOOD[1:]]).encode())
    (folder / ".000001_0.crc").write_bytes(b"\x00garbage")
    report = ingest_partition(LandingExportReader(tmp_path / "landing"), NEWS_POOL, DT, tmp_path / "lake")
    raw = pl.read_parquet(report.path / "part-0.parquet")
    assert raw["itemid"].to_list() == ["100", "200"]
    assert raw["_file"].to_list() == [f"news_pool/dt={DT}/000000_0", f"news_pool/dt={DT}/000001_0"]
    assert report.files == 2


def test_a_file_with_only_bad_lines_is_still_counted_and_its_lines_quarantined(tmp_path):
    folder = land(tmp_path / "landing", "news_pool", [GOOD], name="000000_0")
    (folder / "000001_0").write_bytes(b"only\tthree\tcolumns\n")
    report = ingest_partition(LandingExportReader(tmp_path / "landing"), NEWS_POOL, DT, tmp_path / "lake")
    assert report.files == 2 and report.rows_out == 1 and report.quarantined == 1


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_runs_writing_one_new_partition_at_once_each_swap_in_a_whole_one(tmp_path, monkeypatch, exchange):
    """Writers of the same partition's first version at once (a backfill and the sensor's run, say):
    the first rename wins, the others exchange with it; every writer succeeds, one whole version stays."""
    if not exchange:
        monkeypatch.setattr(lake_module, "_rename_exchange", lambda a, b: False)
    lake, errors, writers = tmp_path / "lake", [], 6
    ready, swap = threading.Barrier(writers), lake_module.swap_into_place

    def swap_together(staging, target):  # every writer reaches the swap at the same moment
        ready.wait()
        swap(staging, target)

    def write(k: int) -> None:
        try:
            lake_module.write_partition(lake, "raw", "t", DT, pl.DataFrame({"a": [k] * 1000}))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    monkeypatch.setattr(lake_module, "swap_into_place", swap_together)
    threads = [threading.Thread(target=write, args=(k,)) for k in range(writers)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave every few bytecodes, as processes would
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors, errors
    values = pl.read_parquet(lake / "raw" / "t" / f"dt={DT}" / "part-0.parquet")["a"]
    assert values.len() == 1000 and values.n_unique() == 1
    assert [p.name for p in (lake / "_staging").iterdir()] == []
    assert [p.name for p in (lake / "raw" / "t").iterdir()] == [f"dt={DT}"]
