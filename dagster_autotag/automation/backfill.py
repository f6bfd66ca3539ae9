"""Backfills of daily assets: one partition per run, runs limited by the instance.

The daily assets read `context.partition_key` (one day), so a run must cover exactly one
partition: `max_partitions_per_run=1`. That is Dagster's default for assets without a policy;
stating it on the decorators keeps a later change to multi-partition runs a deliberate one.
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
