"""One Dagster step per export table: raw/<table> and the clean asset built from it.

Why one step for two assets: the multiprocess executor runs each step in a process of its own,
and a process costs start-up time. Steps are forked from a forkserver that has imported dagster
(automation/executor.py: that import is most of a step's start-up CPU), but each still imports the
code location and sets up Dagster's step context before its own work; with `spawn`, which run
config can still choose, it starts a fresh interpreter and imports dagster too. Both stay separate assets with their own
materialisations and checks, and either can be materialised alone (the step can subset). As with
two steps, a failed blocking raw check stops the clean asset: the step leaves it out, then fails on
that check.
"""

from collections.abc import Iterator

import dagster as dg

from dagster_autotag.clean.clean_step import CLEAN_ASSETS, CleanAsset
from dagster_autotag.clean.raw_step import materialize_raw, raw_check_specs, raw_spec
from dagster_autotag.ingest.tables import EXPORT_TABLES, ExportTable
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.resources import ExportSource, LakeResource


def build_table_step(table: ExportTable, clean: CleanAsset) -> dg.AssetsDefinition:
    raw = raw_spec(table)
    raw_checks = raw_check_specs(table)
    blocking = {spec.name for spec in raw_checks if spec.blocking}

    @dg.multi_asset(
        name=f"ingest_{table.name}",
        specs=[raw, clean.spec],
        check_specs=[*raw_checks, *clean.check_specs],
        partitions_def=daily_partitions,
        can_subset=True,
        description=f"{raw.key.to_user_string()} from the export, then {clean.spec.key.to_user_string()} from it.",
    )
    def table_step(
        context: dg.AssetExecutionContext, export_source: ExportSource, lake: LakeResource
    ) -> Iterator[dg.MaterializeResult]:
        selected = context.selected_asset_keys
        if raw.key in selected:
            result = materialize_raw(context, table, export_source, lake)
            yield _with_selected_checks(result, context)
            failed = [c.check_name for c in result.check_results or [] if not c.passed and c.check_name in blocking]
            if failed:
                context.log.error(f"{clean.spec.key.to_user_string()} not built: blocking check(s) failed: {failed}")
                return
        if clean.spec.key in selected:
            yield _with_selected_checks(clean.materialize(context, lake), context)

    return table_step


def _with_selected_checks(result: dg.MaterializeResult, context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    # a run may select an asset without some of its checks; results for unselected checks are errors
    selected = context.selected_asset_check_keys
    return dg.MaterializeResult(
        asset_key=result.asset_key,
        metadata=result.metadata,
        check_results=[
            c for c in result.check_results or [] if dg.AssetCheckKey(c.asset_key, c.check_name) in selected
        ],
    )


table_steps = [build_table_step(EXPORT_TABLES[clean.raw_table], clean) for clean in CLEAN_ASSETS]
