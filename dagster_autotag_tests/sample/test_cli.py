"""`autotag sample-data` end to end, in a subprocess with AUTOTAG_HOME in a temp dir."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from dagster_autotag import cli
from dagster_autotag.sample import generator
from dagster_autotag.sample.generator import write_landing

TABLES = ("news_pool", "asr", "ocr", "tag_dim")


def _autotag(*args: str, home: Path | None = None, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUTOTAG_HOME"}
    env["PYTHONHASHSEED"] = "4321"  # a different str hash than this process: output must not care
    if home is not None:
        env["AUTOTAG_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "dagster_autotag.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_sample_data_writes_under_autotag_home(tmp_path: Path):
    home = tmp_path / "home"
    out = _autotag("sample-data", "--days", "2", "--start", "2024-05-01", "--items-per-day", "150",
                   "--seed", "3", home=home, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for dt in ("2024-05-01", "2024-05-02"):
        assert f"dt={dt}" in out.stdout
        for table in TABLES:
            part = home / "landing" / table / f"dt={dt}"
            assert (part / "000000_0.tsv").stat().st_size > 0
            assert (part / "_SUCCESS").exists()
            assert str(part / "000000_0.tsv") in out.stdout
    assert "news_pool=" in out.stdout and str(home / "landing") in out.stdout
    # byte-identical to an in-process run with the same seed (determinism across processes)
    here = tmp_path / "here"
    for dt in ("2024-05-01", "2024-05-02"):
        write_landing(here, generator.generate_day(dt, items=150, seed=3))
    for table in TABLES:
        for dt in ("2024-05-01", "2024-05-02"):
            name = f"{table}/dt={dt}/000000_0.tsv"
            assert (home / "landing" / name).read_bytes() == (here / name).read_bytes()


def test_home_option_and_csv_quoting(tmp_path: Path):
    home = tmp_path / "other"
    out = _autotag("sample-data", "--days", "1", "--start", "2024-05-01", "--items-per-day", "60",
                   "--quoting", "csv", "--home", str(home), home=tmp_path / "ignored", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = (home / "landing" / "asr" / "dt=2024-05-01" / "000000_0.tsv").read_bytes()
    assert b'""' in data  # csv-quoted JSON
    assert not (tmp_path / "ignored").exists()


def test_default_start_is_days_before_today_in_shanghai(tmp_path: Path):
    out = _autotag("sample-data", "--days", "2", "--items-per-day", "20", home=tmp_path, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    expected = {f"dt={today - timedelta(days=k)}" for k in (2, 1)}
    assert set(os.listdir(tmp_path / "landing" / "news_pool")) == expected


def test_invalid_arguments_give_clear_errors(tmp_path: Path):
    cases = [
        (["sample-data"], "--days"),
        (["sample-data", "--days", "0"], "between 1 and"),
        (["sample-data", "--days", "x"], "integer"),
        (["sample-data", "--days", "1", "--start", "2024-02-30"], "YYYY-MM-DD"),
        (["sample-data", "--days", "1", "--items-per-day", "-5"], "between 1 and"),
        (["sample-data", "--days", "1", "--quoting", "tsv"], "invalid choice"),
        (["no-such-command"], "invalid choice"),
    ]
    for args, message in cases:
        out = _autotag(*args, home=tmp_path, cwd=tmp_path)
        assert out.returncode == 2, args
        assert message in out.stderr, (args, out.stderr)
    assert not (tmp_path / "landing").exists()


def test_cli_limits_match_the_generator():
    assert cli.MAX_ITEMS_PER_DAY == generator.MAX_ITEMS_PER_DAY
