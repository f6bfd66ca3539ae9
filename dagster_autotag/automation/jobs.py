"""The job type the builders accept: `define_asset_job` returns an unresolved job (not exported
by `dagster`), op-based jobs are JobDefinitions."""

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

AnyJob = UnresolvedAssetJobDefinition | dg.JobDefinition
