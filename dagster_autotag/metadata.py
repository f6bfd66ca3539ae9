"""Small helpers that turn results into Dagster metadata and check results."""

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import polars as pl

PREVIEW_ROWS = 5
PREVIEW_CHARS = 60


def preview(frame: pl.DataFrame, columns: list[str] | None = None) -> dg.TableMetadataValue:
    """The first rows as a table, long strings shortened so the UI stays readable."""
    head = frame.select(columns or frame.columns).head(PREVIEW_ROWS)
    records = []
    for row in head.iter_rows(named=True):
        records.append(dg.TableRecord({k: _cell(v) for k, v in row.items()}))
    schema = dg.TableSchema(columns=[dg.TableColumn(c, str(head.schema[c])) for c in head.columns])
    return dg.MetadataValue.table(records=records, schema=schema)


def _cell(value: object) -> str | int | float | bool | None:
    if value is None or isinstance(value, (int, float, bool)):
        return value
    text = str(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def counts_table(counts: Mapping[str, int], key: str = "reason") -> dg.MarkdownMetadataValue:
    if not counts:
        return dg.MetadataValue.md("_none_")
    lines = [f"| {key} | rows |", "|---|---:|"] + [
        f"| {k} | {v:,} |" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
    ]
    return dg.MetadataValue.md("\n".join(lines))


def table_value(frame: pl.DataFrame) -> dg.TableMetadataValue:
    """The whole frame as a table (floats rounded to 4 places); see `preview` for the first rows."""

    def cell(v):
        return round(v, 4) if isinstance(v, float) else v

    records = [dg.TableRecord({k: cell(v) for k, v in r.items()}) for r in frame.iter_rows(named=True)]
    schema = dg.TableSchema(columns=[dg.TableColumn(c, str(t)) for c, t in frame.schema.items()])
    return dg.MetadataValue.table(records=records, schema=schema)


def path_value(path: Path) -> dg.PathMetadataValue:
    return dg.MetadataValue.path(str(path))


def quarantine_check(
    quarantined: int, considered: int, limit: float, asset_key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    share = quarantined / considered if considered else 0.0
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="quarantine_share",
        passed=share <= limit,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"quarantined": quarantined, "rows": considered, "share": round(share, 6), "limit": limit},
        description=f"{share:.3%} of rows quarantined (limit {limit:.2%})",
    )


def not_empty_check(rows: int, asset_key: dg.AssetKey | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="not_empty",
        passed=rows > 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows": rows},
        description="partition has rows" if rows else "partition is empty",
    )


def check_specs(asset_key: dg.AssetKey, names_and_blocking: list[tuple[str, bool, str]]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=blocking, description=desc)
        for name, blocking, desc in names_and_blocking
    ]


QUARANTINE_SPEC = (
    "quarantine_share",
    True,
    "ERROR (and blocks downstream) when the quarantined share exceeds the limit",
)
NOT_EMPTY_SPEC = ("not_empty", False, "WARN when the partition has no rows")
