"""The default source: export files dropped into $AUTOTAG_HOME/landing/<table>/dt=YYYY-MM-DD/.

Pure: `LandingExportSource` (dagster_autotag/resources.py) is the Dagster resource that builds this
reader from its run configuration.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from dagster_autotag.ingest.source import RawBatch, validate_partition
from dagster_autotag.ingest.tables import ExportTable
from dagster_autotag.ingest.tsv_export import MAX_VALUE_BYTES, MAX_VALUE_LINES, read_export_file


class MissingLandingPartition(FileNotFoundError):
    pass


@dataclass(frozen=True)
class LandingExportReader:
    """Reads Hive tsv2 export files under `root`. Hidden files and markers (`_SUCCESS`, `.crc`) are skipped."""

    root: Path
    quoting: str = "nul"  # "nul" (Hive default) or "csv" (quoting enabled: "…" with "")
    max_value_lines: int = MAX_VALUE_LINES  # a quoted value running longer has a broken opener
    max_value_bytes: int = MAX_VALUE_BYTES

    @property
    def source_name(self) -> str:
        return "landing"

    def partition_path(self, table: ExportTable, dt: str) -> Path:
        return Path(self.root) / table.name / f"dt={validate_partition(dt)}"

    def export_files(self, table: ExportTable, dt: str) -> list[Path]:
        folder = self.partition_path(table, dt)
        if not folder.is_dir():
            raise MissingLandingPartition(
                f"landing partition for {table.name} {dt} is missing: expected export files in {folder}"
            )
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(("_", ".")))

    def iter_batches(self, table: ExportTable, dt: str) -> Iterator[RawBatch]:
        root = Path(self.root)
        files = self.export_files(table, dt)

        def read(path: Path) -> RawBatch:
            return read_export_file(
                path,
                table.column_names,
                self.quoting,
                str(path.relative_to(root)),
                self.max_value_lines,
                self.max_value_bytes,
            )

        # One batch per file (exports come split into part files, which bounds memory); the next
        # file is parsed on the other core while the caller types and writes this one.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(read, files[0]) if files else None
            for following in [*files[1:], None]:
                batch = pending.result()
                pending = pool.submit(read, following) if following else None
                yield batch
