"""quality/label_issues/<scheme>: likely editor-tag errors in a scheme's train + dev rows (cleanlab).

Thin: call quality/label_issues.py, write the Parquet atomically, report. In group `datasets`, so the
jobs that rebuild the splits (build_datasets, retrain_datasets_and_models) check them too.
"""

import dagster as dg
import polars as pl
from pydantic import Field

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.lake import staged_directory, write_parquet
from dagster_autotag.layers import DATASETS_LAYER, QUALITY_LAYER
from dagster_autotag.metadata import path_value, preview
from dagster_autotag.quality.label_issues import ISSUES_FILE, find_label_issues
from dagster_autotag.resources import LakeResource

LABEL_ISSUES = "label_issues"


class LabelIssuesRunConfig(dg.Config):
    folds: int = Field(5, description="out-of-fold probabilities: k folds of the linear model over train + dev")


def build_label_issues_asset(scheme: Scheme) -> dg.AssetsDefinition:
    @dg.asset(
        key=dg.AssetKey([QUALITY_LAYER, LABEL_ISSUES, scheme.name]),
        deps=[dg.AssetKey([DATASETS_LAYER, scheme.name])],
        group_name="datasets",
        kinds={"scikitlearn", "parquet"},
        description=f"Likely tag errors in datasets/{scheme.name} (train + dev): rows whose given labels differ "
        "from an out-of-fold linear model's suggestion, ranked by cleanlab's label quality score (worst first); "
        "`confident` where cleanlab's default filter agrees.",
    )
    def label_issues(
        context: dg.AssetExecutionContext, config: LabelIssuesRunConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        found = find_label_issues(lake.lake() / DATASETS_LAYER / scheme.name, folds=config.folds)
        issues = found.issues
        target = lake.lake() / QUALITY_LAYER / LABEL_ISSUES / scheme.name
        with staged_directory(lake.lake(), target) as staging:
            write_parquet(issues.to_arrow(), staging / ISSUES_FILE)
        confident = int(issues["confident"].sum())
        context.log.info(f"{scheme.name}: {issues.height:,} possible tag errors ({confident:,} confident)")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": issues.height,
                "rows_checked": found.rows_checked,
                "issues": issues.height,
                "confident_issues": confident,
                "issue_share": round(issues.height / max(found.rows_checked, 1), 4),
                "worst": preview(issues.with_columns(pl.col("given", "suggested").list.join(", ")), None),
                "path": path_value(target / ISSUES_FILE),
            }
        )

    return label_issues
