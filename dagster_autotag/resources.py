"""Dagster resources shared by the layers (the export sources live in ingest/)."""

from pathlib import Path

import dagster as dg

from dagster_autotag.settings import autotag_home


class LakeResource(dg.ConfigurableResource):
    """Where run outputs go, and the data-quality limits the ingest checks enforce."""

    home: str = ""  # empty: $AUTOTAG_HOME (default ./var), resolved when used
    quarantine_share_limit: float = 0.01  # ERROR above this share of quarantined rows

    def root(self) -> Path:
        return Path(self.home).resolve() if self.home else autotag_home()

    def lake(self) -> Path:
        return self.root() / "lake"
