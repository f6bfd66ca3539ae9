"""The real code location (schedules, sensor, retrain job and analytics asset included), built once
per session: run requests in the tests resolve against the actual jobs."""

import functools

import dagster as dg

from dagster_autotag.definitions import build_definitions


@functools.cache
def repository() -> dg.RepositoryDefinition:
    return build_definitions().get_repository_def()
