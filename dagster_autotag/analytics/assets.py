"""The asset that refreshes the analysts' DuckDB views after the corpus is written.

It has no automation condition: the jobs predict_and_publish and ingest_to_publish (jobs.py) run
it after publishing; after a backfill, materialise it (or run one of those jobs) to see the new days.
"""

import os

import dagster as dg

from dagster_autotag.analytics.views import DB_FILE, refresh_views
from dagster_autotag.corpus.assets import DISTRIBUTION_KEY, ITEMS_KEY
from dagster_autotag.pools import DUCKDB_POOL, pool_metadata
from dagster_autotag.predict.assets import PUBLISHED_KEY
from dagster_autotag.resources import LakeResource, MlflowResource
from dagster_autotag.train.registry import TRACKING_URI_ENV

DUCKDB_VIEWS_KEY = dg.AssetKey(["analytics", "duckdb_views"])


@dg.asset(
    key=DUCKDB_VIEWS_KEY,
    deps=[ITEMS_KEY, DISTRIBUTION_KEY, PUBLISHED_KEY],
    group_name="analytics",
    kinds={"duckdb"},
    pool=DUCKDB_POOL,  # one refresh at a time when partition runs overlap (for cost: views.py locks anyway)
    description=f"Views in $AUTOTAG_HOME/{DB_FILE} over the lake (corpus, long-format labels, label "
    "distribution, predictions, model versions); open it read-only while runs write.",
)
def duckdb_views(context: dg.AssetExecutionContext, lake: LakeResource, mlflow: MlflowResource) -> dg.MaterializeResult:
    pool = pool_metadata(context, DUCKDB_POOL)
    # Like MlflowResource.uri(), but the default sqlite store follows the lake resource's home.
    tracking_uri = mlflow.tracking_uri or os.environ.get(TRACKING_URI_ENV, "").strip() or None
    db_path = lake.root() / DB_FILE
    counts = refresh_views(lake.lake(), db_path, tracking_uri=tracking_uri)
    context.log.info(f"refreshed {db_path}: {counts}")
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(db_path)),
            "views": dg.MetadataValue.md(
                "| view | rows |\n|---|---:|\n" + "".join(f"| `{v}` | {n} |\n" for v, n in counts.items())
            ),
            **{f"rows.{view}": dg.MetadataValue.int(n) for view, n in counts.items()},
            **pool,
        }
    )


analytics_assets = [duckdb_views]
