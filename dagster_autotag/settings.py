"""Where things live. Every path derives from AUTOTAG_HOME (default ./var), read at call time."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql" / "exports"


def autotag_home() -> Path:
    return Path(os.environ.get("AUTOTAG_HOME", "var")).resolve()


def landing_dir() -> Path:
    return autotag_home() / "landing"


def lake_dir() -> Path:
    return autotag_home() / "lake"
