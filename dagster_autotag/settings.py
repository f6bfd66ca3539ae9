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


import dagster as dg  # noqa: E402  (paths above stay importable without Dagster's import cost)


class LakeResource(dg.ConfigurableResource):
    """Where run outputs go, and the data-quality limits the ingest checks enforce."""

    home: str = ""  # empty: $AUTOTAG_HOME (default ./var), resolved when used
    quarantine_share_limit: float = 0.01  # ERROR above this share of quarantined rows

    def root(self) -> Path:
        return Path(self.home).resolve() if self.home else autotag_home()

    def lake(self) -> Path:
        return self.root() / "lake"
