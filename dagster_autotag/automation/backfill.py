"""Backfills of daily assets: one partition per run, runs limited by the instance.

The daily assets read `context.partition_key` (one day), so a run must cover exactly one
partition: `max_partitions_per_run=1`. That is Dagster's default for assets without a policy, so
the decorators leave it off (passing `backfill_policy` prints a BetaWarning in 1.13); this constant
names the bound, and test_backfill.py's 30-day daemon backfill checks one partition per run.
How many of those runs execute at once is the instance's run queue (dagster.yaml):

    concurrency:
      runs:
        max_concurrent_runs: 2
        tag_concurrency_limits:
          - key: dagster/partition     # the sensor's and the schedule's run of one day never overlap
            value: {applyLimitPerUniqueValue: true}
            limit: 1
"""

import dagster as dg

DAILY_BACKFILL_POLICY = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
