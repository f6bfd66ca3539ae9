"""The default source: export files dropped into $AUTOTAG_HOME/landing/<table>/dt=YYYY-MM-DD/."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
        files = self.export_files(table, dt)

        def read(path: Path) -> RawBatch:
            return read_export_file(path, table.column_names, self.quoting, str(path.relative_to(root)))

        # One batch per file (exports come split into part files, which bounds memory); the next
        # file is parsed on the other core while the caller types and writes this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(read, files[0]) if files else None
            for following in [*files[1:], None]:
                batch = pending.result()
                pending = pool.submit(read, following) if following else None
                yield batch
