"""The one interface both export readers implement, and the batches they yield (no Dagster).

A reader yields `RawBatch`es for one (table, partition): the export's columns as nullable strings,
in `ExportTable.columns` order, plus provenance. Typing, filtering and quarantine happen once,
downstream (ingest/typecast.py), so HiveServer2 and landing files cannot drift apart.
Readers: `LandingExportReader` (landing.py) and `HiveExportReader` (hive_client.py); the Dagster
resources that configure them are in dagster_autotag/resources.py.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from dagster_autotag.ingest.tables import ExportTable

PARTITION_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")

# Columns every RawBatch carries besides the export's own.
FILE_COLUMN = "_file"
LINE_COLUMN = "_line"


def validate_partition(dt: str) -> str:
    """Reject anything but YYYY-MM-DD before it goes near SQL or a path."""
    if not isinstance(dt, str) or not PARTITION_RE.match(dt):
        raise ValueError(f"partition must be YYYY-MM-DD, got {dt!r}")
    return dt


@dataclass(frozen=True)
class QuarantinedLine:
    file: str
    line: int | None  # physical line where the record starts (row ordinal for Hive)
    raw: str  # the raw record, undecodable bytes shown as \x.. escapes
    reason: str


@dataclass
class RawBatch:
    # Export columns as pa.string() (null = Hive NULL) followed by _file (string), _line (int64).
    rows: pa.Table
    quarantine: list[QuarantinedLine] = field(default_factory=list)


def raw_batch_schema(table: ExportTable) -> pa.Schema:
    return pa.schema(
        [pa.field(name, pa.string()) for name in table.column_names]
        + [pa.field(FILE_COLUMN, pa.string()), pa.field(LINE_COLUMN, pa.int64())]
    )


class ExportReader(Protocol):
    """Yields the rows of one export table for one daily partition."""

    @property
    def source_name(self) -> str:
        """'landing' or 'hive': the `_source` of every typed and quarantined row."""
        ...

    def iter_batches(self, table: ExportTable, dt: str) -> Iterator[RawBatch]: ...
