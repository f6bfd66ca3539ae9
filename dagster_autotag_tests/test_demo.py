"""`autotag demo` end to end, as `make demo` runs it, on one small day in a temporary home."""

import os
import subprocess
import sys
from pathlib import Path

import polars as pl


def test_demo_materialises_every_layer_and_prints_the_summary(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # the demo derives it from --home
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster_autotag.cli",
            "demo",
            "--days",
            "1",
            "--start",
            "2024-05-01",
            "--items-per-day",
            "300",
            "--home",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2024-05-01  ok" in out.stdout
    assert "clean/news_items" in out.stdout and str(tmp_path / "lake") in out.stdout
    items = pl.read_parquet(tmp_path / "lake/clean/news_items/dt=2024-05-01/part-0.parquet")
    assert 280 <= items.height <= 300 and items["itemid"].is_unique().all()
    # the run went into the persistent instance under $AUTOTAG_HOME/dagster, so the UI shows it
    assert (tmp_path / "dagster" / "dagster.yaml").exists()
    assert any(Path(tmp_path / "dagster").rglob("*.db"))
