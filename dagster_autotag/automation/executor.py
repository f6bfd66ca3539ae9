"""The code location's executor: Dagster's default (multiprocess, or in-process by run config), but
starting step processes from a forkserver that has imported dagster, instead of `spawn`.

Why: with `spawn` every step starts a fresh interpreter and imports dagster again (1.3 of the ~1.7 s
CPU a step spends before its own work); measured on the ingest of a 1M-row day, a step started ~6 s
after the previous one finished on a busy 2-core machine (run 37 s; 30 s with the forkserver).
Why only dagster is preloaded, not this code location: importing polars starts its thread pool, and
a process forked after that hangs in polars' first parallel call (measured: bench/ingest.py's steps
forked from a server that had imported `dagster_autotag.definitions` hung in `pl.from_arrow`). Each
step imports the location itself, after the fork. Run config can still choose `spawn` or `in_process`.
"""

import dagster as dg

# Dagster preloads the job's module when none are named: that would be this code location.
PRELOAD_MODULES = ["dagster"]


def _forkserver_unless_chosen(config: dict) -> dict:
    multiprocess = config.get("multiprocess")
    if multiprocess is not None and not multiprocess.get("start_method"):
        start_method = {"forkserver": {"preload_modules": PRELOAD_MODULES}}
        return {"multiprocess": {**multiprocess, "start_method": start_method}}
    return config


forkserver_executor = dg.multi_or_in_process_executor.configured(
    _forkserver_unless_chosen, config_schema=dg.multi_or_in_process_executor.config_schema.as_field()
)
