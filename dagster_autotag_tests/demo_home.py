"""Runs `autotag demo` once into a temporary home (what `make demo` does, smaller)."""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEMO_DAYS = ["2024-05-01", "2024-05-02", "2024-05-03"]
DEMO_ITEMS_PER_DAY = 800


def tracking_uri(home: Path) -> str:
    """The MLflow store the demo (and a copy of its home) writes: sqlite under <home>/mlflow."""
    return f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"


@dataclass
class DemoHome:
    path: Path
    stdout: str

    def env(self) -> dict[str, str]:
        return {**os.environ, "AUTOTAG_HOME": str(self.path), "DAGSTER_HOME": str(self.path / "dagster")}


def run_demo(home: Path) -> DemoHome:
    env = {
        k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "AUTOTAG_CJK_FONT")
    }  # DAGSTER_HOME: from --home
    # As on a fresh machine: an empty matplotlib cache and no system font visible to matplotlib (CI
    # installs a CJK one for Chromium), so the charts must come from the font the project ships.
    (home / "mplconfig").mkdir()
    env.update(MPLCONFIGDIR=str(home / "mplconfig"), MPL_IGNORE_SYSTEM_FONTS="1")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster_autotag.cli",
            "demo",
            "--days",
            str(len(DEMO_DAYS)),
            "--start",
            DEMO_DAYS[0],
            "--items-per-day",
            str(DEMO_ITEMS_PER_DAY),
            "--home",
            str(home),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return DemoHome(home, out.stdout)
