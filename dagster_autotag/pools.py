"""The instance's pools: the throttle for cost (one training, one DuckDB refresh at a time), never the
guard for correctness — every shared write is safe without them (train/store.py, lake.py,
analytics/views.py, predict/reference.py). An instance whose dagster.yaml has no `concurrency:`
block (a production deployment that did not copy the one `make demo`/`make ui` write) runs them
all at once: the assets that rely on a pool for cost say so in the run log (a warning) and in
their materialization's metadata (`pool_limit`).
"""

import dagster as dg

TRAINING_POOL = "autotag_training"  # trainings and the serving measurement: they fill every core
DUCKDB_POOL = "autotag_duckdb"  # the analysts' view database refresh
INSTANCE_HINT = (
    "set one in $DAGSTER_HOME/dagster.yaml (concurrency: pools: default_limit: 1, as `make demo` writes) "
    "or `dagster instance concurrency set {pool} 1`"
)


def pool_limit(instance: dg.DagsterInstance, pool: str) -> int | None:
    """The limit the instance applies to `pool`: one set for it (`dagster instance concurrency set`),
    else the instance's default pool limit; None when nothing limits it (or the storage cannot)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return None
    for limit in storage.get_pool_limits():
        if limit.name == pool and not limit.from_default:
            return limit.limit
    return instance.get_concurrency_config().pool_config.default_pool_limit


def pool_metadata(context: dg.AssetExecutionContext, pool: str) -> dict[str, str]:
    """Checks the pool at step start: a warning in the run log when it has no limit; the metadata entry
    to put on the materialization either way."""
    try:
        limit = pool_limit(context.instance, pool)
    except Exception as exc:  # noqa: BLE001 - a report about cost never fails the asset
        context.log.warning(f"could not read pool {pool}'s limit from the instance: {exc}")
        return {"pool_limit": f"{pool}: unknown ({type(exc).__name__})"}
    if limit is None:
        context.log.warning(
            f"pool {pool} has no limit on this instance: steps that share it run at once (safe, but they share "
            f"the cores and memory); {INSTANCE_HINT.format(pool=pool)}"
        )
        return {"pool_limit": f"{pool}: no limit (runs at once with the others; see the run log)"}
    return {"pool_limit": f"{pool}: {limit}"}
