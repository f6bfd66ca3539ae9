"""predictions/daily_labels (daily: each scheme's champion over corpus/items, with the label_drift and
input_drift checks) and predictions/published (daily: the partition copied where consumers read it).

Thin: resolve champions, call predict/ and quality/, write, report. label_drift is blocking, so in
a run that holds both assets an ERROR stops predictions/published for that partition; the drift
verdict is also written next to the Parquet (drift.json), so a later run publishing the same
partition on its own refuses too (run config `force: true` overrides it, on purpose only).
"""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
from pydantic import Field

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.lake import PART_FILE, partition_dir, read_partition, staged_partition, write_parquet
from dagster_autotag.layers import (
    CORPUS_ITEMS,
    CORPUS_LAYER,
    DAILY_LABELS,
    DATASETS_LAYER,
    PREDICTIONS_LAYER,
    PUBLISHED_LAYER,
)
from dagster_autotag.metadata import check_specs, counts_table, path_value, preview, table_value
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.predict.batch import (
    MODEL_SCHEMA,
    PREDICTION_SCHEMA,
    label_counts,
    predict_items,
    with_model_columns,
)
from dagster_autotag.predict.champion import Champion, MissingChampionsError, load_champions
from dagster_autotag.predict.inputs import corpus_input_drift
from dagster_autotag.predict.reference import (
    REFERENCE_MAX_ROWS,
    REFERENCE_SPLITS,
    cached_reference_profile,
    prediction_profile,
)
from dagster_autotag.quality.drift import (
    ERROR,
    OK,
    WARN,
    DriftResult,
    DriftThresholds,
    drift_markdown,
    label_drift,
    worst,
)
from dagster_autotag.resources import LakeResource, MlflowResource

LABELS_KEY = dg.AssetKey([PREDICTIONS_LAYER, DAILY_LABELS])
PUBLISHED_KEY = dg.AssetKey([PREDICTIONS_LAYER, PUBLISHED_LAYER])
CORPUS_ITEMS_KEY = dg.AssetKey([CORPUS_LAYER, CORPUS_ITEMS])
GROUP = "predictions"
DRIFT_FILE = "drift.json"
REFERENCE_CACHE = Path(PREDICTIONS_LAYER) / "_reference"  # under the lake: label profiles per champion and dataset
TABLE_COLUMNS = ["scheme", *PREDICTION_SCHEMA, *MODEL_SCHEMA]
CORPUS_COLUMNS = ["itemid", "dtype", "text", "rule_labels", "has_asr", "has_ocr"]
CHECK_SEVERITY = {WARN: dg.AssetCheckSeverity.WARN, ERROR: dg.AssetCheckSeverity.ERROR}


class PredictRunConfig(dg.Config):
    """Run config of predictions/daily_labels (defaults shown in the launchpad)."""

    schemes: list[str] = Field([], description="schemes to predict; empty = every scheme of the code location")
    model_kinds: dict[str, str] = Field(
        {}, description="scheme → model kind, used as given (no fallback); other schemes use the default kind"
    )
    skip_schemes_without_champion: bool = Field(False, description="skip (and warn) instead of failing the run")
    batch_size: int = 4096
    top_k: int = Field(0, description="at most k sub-labels per item; 0 = the cap each model was trained with")
    drift_metric: str = Field("js", description="js (Jensen–Shannon distance, base 2) | psi")
    drift_warn: float = 0.1
    drift_error: float = 0.2
    drift_min_expected: float = Field(5.0, description="appear/disappear needs this many expected items")
    drift_min_items: int = Field(30, description="shares over fewer items are not compared")
    reference_splits: list[str] = Field(list(REFERENCE_SPLITS), description="dataset splits the champion predicts")
    reference_max_rows: int = REFERENCE_MAX_ROWS
    input_reference_days: int = Field(7, description="corpus days before the partition that input drift compares with")

    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(
            self.drift_warn, self.drift_error, self.drift_metric, self.drift_min_expected, self.drift_min_items
        )


class PublishRunConfig(dg.Config):
    force: bool = Field(False, description="publish even though label_drift was ERROR for this partition")


def build_prediction_assets(schemes: list[Scheme], model_kind: str = "ensemble") -> list[dg.AssetsDefinition]:
    """model_kind: the default per scheme, falling back ensemble → bert → textcnn → linear to the
    first kind that has a champion."""
    return [build_daily_labels_asset([s.name for s in schemes], model_kind), build_published_asset()]


def build_daily_labels_asset(names: list[str], model_kind: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=LABELS_KEY,
        deps=[CORPUS_ITEMS_KEY],
        partitions_def=daily_partitions,
        group_name=GROUP,
        kinds={"mlflow", "polars", "parquet"},
        check_specs=check_specs(
            LABELS_KEY,
            [
                (
                    "label_drift",
                    True,
                    "ERROR (blocks publishing) when a label's share moved ≥ the error threshold "
                    "from the champion's held-out predictions, or a label appeared/disappeared; WARN ≥ warn",
                ),
                ("input_drift", False, "WARN when text length, dtype mix or ASR/OCR coverage moved from earlier days"),
            ],
        ),
        description=f"Labels of every corpus item by each scheme's champion ({', '.join(names)}; default kind "
        f"{model_kind}, falling back to simpler kinds): one row per item and scheme with shipped labels only, "
        "gate and per-label scores, rule labels and the model version.",
    )
    def daily_labels(
        context: dg.AssetExecutionContext, config: PredictRunConfig, lake: LakeResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        dt = context.partition_key
        root = lake.lake()
        corpus = read_partition(root, CORPUS_LAYER, CORPUS_ITEMS, dt).select(CORPUS_COLUMNS).collect()
        champions = resolve_champions(context, config, mlflow.uri(), names, model_kind)
        table, drifts = predict_schemes(context, champions, corpus, root, config)
        inputs = corpus_input_drift(root, dt, corpus, config.input_reference_days, config.thresholds())
        label_severity, label_check = label_drift_check(drifts, config.thresholds())
        verdict = {
            "label_drift": label_severity,
            "input_drift": inputs.severity if inputs else OK,
            "models": {c.scheme: c.describe() for c in champions},
        }
        with staged_partition(root, PREDICTIONS_LAYER, DAILY_LABELS, dt) as staging:
            write_parquet(table.to_arrow(), staging / PART_FILE)
            (staging / DRIFT_FILE).write_text(json.dumps(verdict, ensure_ascii=False, indent=1), encoding="utf-8")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "items": corpus.height,
                **{f"champion/{c.scheme}": c.describe() for c in champions},
                "models": dg.MetadataValue.json({c.scheme: model_json(c) for c in champions}),
                "label_counts": counts_table(label_counts(table, corpus), key="scheme: label"),
                "label_drift": verdict["label_drift"],
                "path": path_value(partition_dir(root, PREDICTIONS_LAYER, DAILY_LABELS, dt)),
                "preview": preview(table, ["scheme", "itemid", "dtype", "labels", "gate_score", "labels_all"]),
            },
            check_results=[label_check, input_drift_check(inputs, config.input_reference_days)],
        )

    return daily_labels


def build_published_asset() -> dg.AssetsDefinition:
    @dg.asset(
        key=PUBLISHED_KEY,
        deps=[LABELS_KEY],
        partitions_def=daily_partitions,
        group_name=GROUP,
        kinds={"parquet"},
        description="The day's predictions where consumers read them (lake/published/daily_labels/dt=…), only "
        "when label_drift was not ERROR for that partition.",
    )
    def published(
        context: dg.AssetExecutionContext, config: PublishRunConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        dt = context.partition_key
        root = lake.lake()
        source = partition_dir(root, PREDICTIONS_LAYER, DAILY_LABELS, dt)
        verdict = drift_verdict(source, dt)
        if verdict.get("label_drift") == ERROR and not config.force:
            raise dg.Failure(
                description=f"not publishing {dt}: label_drift was ERROR for predictions/daily_labels {dt} "
                "(see the check's table of moved labels); re-materialize after fixing, or run with force: true",
                metadata={"verdict": dg.MetadataValue.json(verdict)},
            )
        with staged_partition(root, PUBLISHED_LAYER, DAILY_LABELS, dt) as staging:
            shutil.copyfile(source / PART_FILE, staging / PART_FILE)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": pq.ParquetFile(source / PART_FILE).metadata.num_rows,
                "label_drift": verdict.get("label_drift", "unknown"),
                "forced": config.force,
                "path": path_value(partition_dir(root, PUBLISHED_LAYER, DAILY_LABELS, dt)),
            }
        )

    return published


def drift_verdict(source: Path, dt: str) -> dict:
    """The verdict daily_labels wrote next to partition `dt` ({} when it wrote none)."""
    if not (source / PART_FILE).exists():
        raise FileNotFoundError(f"predictions/daily_labels has no partition {dt} at {source}; materialize it first")
    return json.loads((source / DRIFT_FILE).read_text(encoding="utf-8")) if (source / DRIFT_FILE).exists() else {}


def resolve_champions(
    context: dg.AssetExecutionContext, config: PredictRunConfig, uri: str, names: list[str], model_kind: str
) -> list[Champion]:
    """predict/champion.py's load_champions; schemes without a champion fail the run (dg.Failure), or
    are skipped with a warning when the run config allows it."""
    try:
        champions, skipped = load_champions(
            uri,
            names,
            model_kind,
            schemes=config.schemes,
            model_kinds=config.model_kinds,
            skip_missing=config.skip_schemes_without_champion,
            log=context.log.info,
        )
    except MissingChampionsError as exc:
        # dg.Failure: the UI shows its description first, not a wrapped stack trace
        raise dg.Failure(description=str(exc), metadata={"schemes_without_champion": len(exc.messages)}) from exc
    for message in skipped:
        context.log.warning(f"skipped: {message}")
    return champions


def predict_schemes(
    context: dg.AssetExecutionContext,
    champions: list[Champion],
    corpus: pl.DataFrame,
    root: Path,
    config: PredictRunConfig,
) -> tuple[pl.DataFrame, dict[str, DriftResult | str]]:
    """(every champion's rows in TABLE_COLUMNS, label drift per scheme)."""
    predicted_at = datetime.now(UTC)
    frames, drifts = [], {}
    for champion in champions:
        scheme = champion.scheme

        def progress(done: int, total: int, scheme: str = scheme) -> None:
            context.log.info(f"{scheme}: predicted {done:,} / {total:,} items")

        rows = predict_items(corpus, champion.model, config.batch_size, progress, config.top_k or None)
        dataset_dir = root / DATASETS_LAYER / scheme
        drifts[scheme] = scheme_label_drift(champion, rows, dataset_dir, root / REFERENCE_CACHE, config)
        rows = with_model_columns(rows, champion.name, champion.version, champion.run_id, predicted_at)
        frames.append(rows.with_columns(pl.lit(scheme).alias("scheme")).select(TABLE_COLUMNS))
    return pl.concat(frames), drifts


def scheme_label_drift(
    champion: Champion, rows: pl.DataFrame, dataset_dir: Path, cache_dir: Path, config: PredictRunConfig
):
    """The scheme's DriftResult, or a string saying why there is no reference to compare with."""
    try:
        reference = cached_reference_profile(
            cache_dir, champion.describe(), champion.model, dataset_dir, config.reference_splits,
            config.reference_max_rows, config.top_k or None,
        )  # fmt: skip
    except FileNotFoundError as exc:
        return f"no reference for {champion.scheme}: {exc} (materialize datasets/{champion.scheme})"
    return label_drift(reference, prediction_profile(rows, champion.model), config.thresholds())


def label_drift_check(
    drifts: dict[str, DriftResult | str], thresholds: DriftThresholds
) -> tuple[str, dg.AssetCheckResult]:
    """Worst severity over the schemes; a scheme without a reference counts as WARN (not checked)."""
    results = {s: d for s, d in drifts.items() if isinstance(d, DriftResult)}
    problems = [d for d in drifts.values() if isinstance(d, str)]
    severity = worst([d.severity for d in results.values()] + [WARN] * len(problems))
    moved = [d.moved.with_columns(pl.lit(s).alias("scheme")) for s, d in results.items()]
    moved = pl.concat(moved).select("scheme", pl.exclude("scheme")) if moved else pl.DataFrame()
    notes = problems + [f"{s}: {d.severity} — {'; '.join(d.notes)}" for s, d in results.items()]
    report = drift_markdown(moved, thresholds, notes, "label drift") if moved.height or notes else "_nothing compared_"
    return severity, dg.AssetCheckResult(
        check_name="label_drift",
        passed=severity == OK,
        severity=CHECK_SEVERITY.get(severity, dg.AssetCheckSeverity.WARN),
        metadata={
            "severity": severity,
            "moved_labels": table_value(moved),
            "report": dg.MetadataValue.md(report),
            "thresholds": dg.MetadataValue.json(thresholds.__dict__),
        },
        description=f"label drift {severity}: {moved.height} row(s) moved" + (f"; {problems[0]}" if problems else ""),
    )


def input_drift_check(result: DriftResult | None, days: int) -> dg.AssetCheckResult:
    if result is None:
        return dg.AssetCheckResult(
            check_name="input_drift",
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"severity": OK},
            description=f"no corpus/items partition in the {days} days before this one to compare with",
        )
    return dg.AssetCheckResult(
        check_name="input_drift",
        passed=result.severity == OK,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "severity": result.severity,
            "moved": table_value(result.moved),
            "report": dg.MetadataValue.md(result.markdown("input drift")),
        },
        description=f"input drift {result.severity}: {result.moved.height} row(s) moved",
    )


def model_json(champion: Champion) -> dict:
    return {
        "name": champion.name,
        "kind": champion.kind,
        "version": champion.version,
        "run_id": champion.run_id,
        "shipped": champion.model.shipped_targets(),
    }
