"""The default source: export files dropped into $AUTOTAG_HOME/landing/<table>/dt=YYYY-MM-DD/."""

from collections.abc import Iterator
from pathlib import Path

from dagster_autotag.ingest.source import ExportSource, RawBatch, validate_partition
from dagster_autotag.ingest.tables import ExportTable
from dagster_autotag.ingest.tsv_export import read_export_file
from dagster_autotag.settings import landing_dir as default_landing_dir


class MissingLandingPartition(FileNotFoundError):
    pass


class LandingExportSource(ExportSource):
    """Reads Hive tsv2 export files. Hidden files and markers (`_SUCCESS`, `.crc`) are skipped."""

    landing_dir: str = ""  # empty: $AUTOTAG_HOME/landing, resolved when used
    quoting: str = "nul"  # "nul" (Hive default) or "csv" (quoting enabled: "…" with "")

    @property
    def source_name(self) -> str:
        return "landing"

    def root(self) -> Path:
        return Path(self.landing_dir) if self.landing_dir else default_landing_dir()

    def partition_path(self, table: ExportTable, dt: str) -> Path:
        return self.root() / table.name / f"dt={validate_partition(dt)}"

    def export_files(self, table: ExportTable, dt: str) -> list[Path]:
        folder = self.partition_path(table, dt)
        if not folder.is_dir():
            raise MissingLandingPartition(
                f"landing partition for {table.name} {dt} is missing: expected export files in {folder}"
            )
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))

    def iter_batches(self, table: ExportTable, dt: str) -> Iterator[RawBatch]:
        root = self.root()
        for path in self.export_files(table, dt):
            # One batch per file: exports are split into many part files, which bounds memory.
            yield read_export_file(path, table.column_names, self.quoting, str(path.relative_to(root)))
