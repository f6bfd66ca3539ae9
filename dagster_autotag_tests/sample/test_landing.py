"""write_landing / generate_landing: real files, read back with a tiny independent reader."""

import os
from pathlib import Path

import pytest

from dagster_autotag.ingest import tsv_export
from dagster_autotag.ingest.tables import EXPORT_TABLES
from dagster_autotag.sample import dirt
from dagster_autotag.sample.generator import SUCCESS_MARKER, generate_day, generate_landing, write_landing
from dagster_autotag_tests.sample.conftest import DT
from dagster_autotag_tests.sample.tsv_reader import read_tsv2

TABLES = ("news_pool", "asr", "ocr", "tag_dim")


def _read(paths: list[Path], table: str, quoting: str):
    rows, bad = [], []
    for p in paths:
        r, b = read_tsv2(p.read_bytes(), len(EXPORT_TABLES[table].columns), quoting)
        rows += r
        bad += b
    return rows, bad


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_success_marker_last_and_no_leftovers(tmp_path: Path, dirty_day):
    files = write_landing(tmp_path, dirty_day)
    assert set(files) == set(TABLES)
    for table, paths in files.items():
        part = tmp_path / table / f"dt={DT}"
        assert paths == [part / "000000_0.tsv"]
        marker = part / SUCCESS_MARKER
        assert marker.is_file() and marker.read_bytes() == b""
        assert marker.stat().st_mtime_ns >= paths[0].stat().st_mtime_ns
        assert sorted(p.name for p in part.iterdir()) == ["000000_0.tsv", SUCCESS_MARKER]
        assert [p.name for p in (tmp_path / table).iterdir()] == [f"dt={DT}"]  # no temp dirs left


@pytest.mark.parametrize("quoting", ["nul", "csv"])
def test_round_trip_without_file_dirt(tmp_path: Path, dirty_day, quoting: str):
    files = write_landing(tmp_path, dirty_day, quoting=quoting, file_dirt=False)
    for table, paths in files.items():
        rows, bad = _read(paths, table, quoting)
        assert not bad, (table, bad[:3])
        assert rows == dirty_day.rows[table], table
    data = files["news_pool"][0].read_bytes()
    if quoting == "nul":
        assert b"\0" in data and b'"\t' not in data
    else:
        assert b"\0" not in data and b'""' in files["asr"][0].read_bytes()
    assert b"\tNULL\t" in data  # NULL literal


def test_file_dirt_adds_only_broken_lines(tmp_path: Path, dirty_day):
    files = write_landing(tmp_path, dirty_day, file_dirt=True)
    rows, bad = _read(files["news_pool"], "news_pool", "nul")
    assert rows == dirty_day.rows["news_pool"]  # every real row is still there, in order
    ncols = len(EXPORT_TABLES["news_pool"].columns)
    kinds = {"blank": 0, "few": 0, "many": 0, "utf8": 0}
    for raw in bad:
        if raw == b"":
            kinds["blank"] += 1
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            kinds["utf8"] += 1
            continue
        tabs = raw.count(b"\t") - sum(part.count(b"\t") for part in raw.split(b"\0")[1::2])
        kinds["few" if tabs + 1 < ncols else "many"] += 1
    assert all(kinds.values()), kinds
    assert len(bad) == sum(dirt.file_dirt_counts(len(rows)).values())
    # row dirt that would be quarantined + file dirt: comfortably below a 1% quarantine limit
    quarantinable = len(bad) + sum(1 for r in rows if not r[0])
    assert quarantinable / len(rows) < 0.006
    # tag_dim never gets file dirt; small media tables neither (below FILE_DIRT_MIN_LINES)
    for table in ("tag_dim", "asr", "ocr"):
        assert len(dirty_day.rows[table]) < dirt.FILE_DIRT_MIN_LINES
        assert _read(files[table], table, "nul") == (dirty_day.rows[table], [])


def test_same_seed_gives_byte_identical_files_other_seed_does_not(tmp_path: Path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        write_landing(tmp_path / name, generate_day(DT, items=300, seed=seed), quoting="nul")
    a, b, c = (_tree(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["news_pool/dt=2024-05-01/000000_0.tsv"] != c["news_pool/dt=2024-05-01/000000_0.tsv"]
    assert a["tag_dim/dt=2024-05-01/000000_0.tsv"] == c["tag_dim/dt=2024-05-01/000000_0.tsv"]


def test_several_files_per_table(tmp_path: Path, dirty_day):
    files = write_landing(tmp_path, dirty_day, files_per_table=3, file_dirt=False)
    for table, paths in files.items():
        assert [p.name for p in paths] == ["000000_0.tsv", "000001_0.tsv", "000002_0.tsv"]
        rows, bad = _read(paths, table, "nul")
        assert rows == dirty_day.rows[table] and not bad


def test_rewrite_replaces_the_partition(tmp_path: Path):
    write_landing(tmp_path, generate_day(DT, items=100, seed=1))
    part = tmp_path / "news_pool" / f"dt={DT}"
    (part / "000009_0.tsv").write_bytes(b"stale\n")
    other = tmp_path / "news_pool" / "dt=2024-04-30"
    other.mkdir()
    write_landing(tmp_path, generate_day(DT, items=100, seed=2), files_per_table=1)
    assert sorted(p.name for p in part.iterdir()) == ["000000_0.tsv", SUCCESS_MARKER]
    assert other.is_dir()  # other partitions untouched
    assert sorted(p.name for p in (tmp_path / "news_pool").iterdir()) == ["dt=2024-04-30", f"dt={DT}"]


def test_invalid_write_arguments(tmp_path: Path, dirty_day):
    with pytest.raises(ValueError, match="quoting"):
        write_landing(tmp_path, dirty_day, quoting="tsv")
    with pytest.raises(ValueError, match="files_per_table"):
        write_landing(tmp_path, dirty_day, files_per_table=0)
    assert not any(tmp_path.iterdir())


def test_generate_landing_writes_consecutive_days(tmp_path: Path):
    dts = generate_landing(tmp_path, days=3, start="2024-02-28", items_per_day=50, seed=0, quoting="csv")
    assert dts == ["2024-02-28", "2024-02-29", "2024-03-01"]
    for table in TABLES:
        assert sorted(os.listdir(tmp_path / table)) == [f"dt={d}" for d in dts]
        for d in dts:
            assert (tmp_path / table / f"dt={d}" / SUCCESS_MARKER).exists()


def test_production_reader_reads_the_files(tmp_path: Path, dirty_day):
    """Cross-check with ingest/tsv_export.py: same rows, and exactly the file dirt quarantined."""
    for quoting in ("nul", "csv"):
        files = write_landing(tmp_path / quoting, dirty_day, quoting=quoting, file_dirt=True, files_per_table=2)
        for table, paths in files.items():
            names = EXPORT_TABLES[table].column_names
            rows, quarantined = [], 0
            for p in paths:
                batch = tsv_export.read_export_file(p, names, quoting=quoting)
                rows += list(zip(*(batch.rows.column(c).to_pylist() for c in names)))
                quarantined += len(batch.quarantine)
            assert rows == dirty_day.rows[table], (quoting, table)
            expected = sum(dirt.file_dirt_counts(len(rows)).values()) if table != "tag_dim" else 0
            assert quarantined == expected, (quoting, table)
