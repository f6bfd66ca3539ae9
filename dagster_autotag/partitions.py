"""The one daily partitions definition every daily asset shares (days in Asia/Shanghai)."""

import os

import dagster as dg

TIMEZONE = "Asia/Shanghai"
START_DATE = os.environ.get("AUTOTAG_START_DATE", "2024-01-01")

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone=TIMEZONE)
