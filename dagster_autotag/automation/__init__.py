"""Schedules, the landing sensor and the executor; definitions.py wires them to the jobs (jobs.py) by name."""

from dagster_autotag.automation.schedules import (
    build_daily_schedule,
    build_retrain_schedule,
    build_schedules,
    last_complete_partition,
)
from dagster_autotag.automation.sensors import build_landing_sensor, complete_days

__all__ = [
    "build_daily_schedule",
    "build_landing_sensor",
    "build_retrain_schedule",
    "build_schedules",
    "complete_days",
    "last_complete_partition",
]
