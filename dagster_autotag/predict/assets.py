"""predictions/daily_labels (daily: each scheme's serving model over corpus/items, with the label_drift and
input_drift checks), predictions/published (daily: the partition copied where consumers read it) and
models/<scheme>/serving (group models: which model serves, chosen by measurement and kept in the registry).

Thin: resolve the serving models (predict/champion.py), call predict/ and quality/, write, report.
label_drift is blocking, so in a run that holds both assets an ERROR stops predictions/published for
that partition; the drift verdict is also written next to the Parquet (drift.json), so a later run
publishing the same partition on its own refuses too (run config `force: true` overrides it, on purpose only).
"""

import json
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pyarrow.parquet as pq
from pydantic import Field

from dagster_autotag.alerts.webhook import Alert, send_alert
from dagster_autotag.corpus.config import Scheme
from dagster_autotag.lake import PART_FILE, partition_dir, read_partition, staged_partition, write_parquet
from dagster_autotag.layers import (
    CLEAN_LAYER,
    CORPUS_ITEMS,
    CORPUS_LAYER,
    DAILY_LABELS,
    DATASETS_LAYER,
    PREDICTIONS_LAYER,
    PUBLISHED_LAYER,
    TAGS,
)
from dagster_autotag.metadata import check_specs, counts_table, path_value, preview, table_value
from dagster_autotag.partitions import daily_partitions
from dagster_autotag.pools import TRAINING_POOL, pool_metadata
from dagster_autotag.predict.batch import (
    MODEL_SCHEMA,
    PREDICTION_SCHEMA,
    label_counts,
    predict_items,
    with_model_columns,
)
from dagster_autotag.predict.champion import (
    DEFAULT_METRIC,
    Champion,
    MissingChampionsError,
    NoChampionError,
    Serving,
    decide_and_record,
    load_champion,
    load_servings,
    serving_model_name,
)
from dagster_autotag.predict.inputs import corpus_input_drift
from dagster_autotag.predict.reference import (
    REFERENCE_MAX_ROWS,
    REFERENCE_SPLITS,
    cached_reference_profile,
    prediction_profile,
)
from dagster_autotag.predict.serving import ServingError
from dagster_autotag.predict.taxonomy import TaxonomyDifference, current_targets, mask_retired, taxonomy_difference
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
from dagster_autotag.train.assets import enabled_kinds

LABELS_KEY = dg.AssetKey([PREDICTIONS_LAYER, DAILY_LABELS])
PUBLISHED_KEY = dg.AssetKey([PREDICTIONS_LAYER, PUBLISHED_LAYER])
CORPUS_ITEMS_KEY = dg.AssetKey([CORPUS_LAYER, CORPUS_ITEMS])
GROUP = "predictions"
DRIFT_FILE = "drift.json"
REFERENCE_CACHE = Path(PREDICTIONS_LAYER) / "_reference"  # under the lake: label profiles per champion and dataset
# runner_up_labels: a second, cheap kind's labels where the run config names one (else null); review/tasks
# sends the items where it disagrees with the serving model as hard cases
RUNNER_UP_LABELS = "runner_up_labels"
TABLE_COLUMNS = ["scheme", *PREDICTION_SCHEMA, *MODEL_SCHEMA, RUNNER_UP_LABELS]
CORPUS_COLUMNS = ["itemid", "dtype", "text", "rule_labels", "has_asr", "has_ocr"]
CHECK_SEVERITY = {WARN: dg.AssetCheckSeverity.WARN, ERROR: dg.AssetCheckSeverity.ERROR}


class PredictRunConfig(dg.Config):
    """Run config of predictions/daily_labels (defaults shown in the launchpad)."""

    schemes: list[str] = Field([], description="schemes to predict; empty = every scheme of the code location")
    model_kinds: dict[str, str] = Field(
        {}, description="scheme → model kind: predict with that kind's champion instead of the measured choice"
    )
    model_versions: dict[str, str] = Field(
        {}, description="scheme → 'kind:version' (e.g. linear:3): predict with exactly that registered version"
    )
    inference_budgets_s_per_100k: dict[str, float] = Field(
        {},
        description="scheme → inference budget (seconds per 100k items) for this run instead of the scheme's "
        "(corpus.yaml); a run that overrides decides for itself and leaves the registry's decision alone",
    )
    runner_up_kinds: dict[str, str] = Field(
        {},
        description="scheme → a second, cheap kind (e.g. linear) whose champion labels the day too, into "
        "runner_up_labels; review/tasks sends the items where the two disagree as hard cases",
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

    def pins(self) -> dict[str, str]:
        """scheme → "kind" or "kind:version"; model_versions wins when it names the same kind."""
        for scheme, pin in self.model_versions.items():
            kind = self.model_kinds.get(scheme)
            if kind is not None and pin.partition(":")[0].strip() != kind:
                raise ValueError(f"run config pins {scheme} twice: model_kinds {kind!r}, model_versions {pin!r}")
        return {**self.model_kinds, **self.model_versions}


class PublishRunConfig(dg.Config):
    force: bool = Field(False, description="publish even though label_drift was ERROR for this partition")


def serving_key(scheme: str) -> dg.AssetKey:
    return dg.AssetKey(["models", scheme, "serving"])


def build_prediction_assets(schemes: list[Scheme]) -> list[dg.AssetsDefinition]:
    return [build_daily_labels_asset(schemes), build_published_asset()]


def build_daily_labels_asset(schemes: list[Scheme]) -> dg.AssetsDefinition:
    names = [s.name for s in schemes]
    budgets = {s.name: s.inference_budget_s_per_100k for s in schemes}
    by_name = {s.name: s for s in schemes}

    @dg.asset(
        key=LABELS_KEY,
        # the serving decisions: lineage of which model labels the days (read from the registry)
        deps=[CORPUS_ITEMS_KEY, *(serving_key(name) for name in names)],
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
        description=f"Labels of every corpus item by each scheme's serving model ({', '.join(names)}): the best "
        "champion on the current test split within the scheme's inference budget, as models/<scheme>/serving "
        "recorded it (decided again when a champion moved). One row per item and scheme with shipped labels "
        "only, gate and per-label scores, rule labels and the model version.",
    )
    def daily_labels(
        context: dg.AssetExecutionContext, config: PredictRunConfig, lake: LakeResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        dt = context.partition_key
        root = lake.lake()
        corpus = read_partition(root, CORPUS_LAYER, CORPUS_ITEMS, dt).select(CORPUS_COLUMNS).collect()
        servings = resolve_servings(context, config, mlflow.uri(), budgets, root / DATASETS_LAYER)
        changes = {s.champion.scheme: day_taxonomy(context, root, dt, by_name[s.champion.scheme], s) for s in servings}
        for serving in servings:  # a label retired since training is not shipped today
            retired = changes[serving.champion.scheme].retired
            serving.champion = replace(
                serving.champion, model=mask_retired(serving.champion.model, retired), masked=tuple(retired)
            )
        champions = [s.champion for s in servings]
        runners_up = load_runners_up(context, config, mlflow.uri(), champions)
        table, drifts, seconds = predict_schemes(context, champions, corpus, root, config, runners_up)
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
        if label_severity == ERROR:
            alerted = send_alert(drift_alert(dt, context.run.run_id, label_check))
            context.log.info(f"label_drift ERROR for {dt}; alert webhook: {alerted}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "items": corpus.height,
                **{f"champion/{c.scheme}": c.describe() for c in champions},
                **{f"runner_up/{scheme}": c.describe() for scheme, c in runners_up.items()},
                **{f"serving/{s.champion.scheme}": dg.MetadataValue.md(serving_markdown(s)) for s in servings},
                "models": dg.MetadataValue.json(
                    {
                        s.champion.scheme: {
                            **model_json(s, seconds[s.champion.scheme], corpus.height),
                            "taxonomy": changes[s.champion.scheme].to_dict(),
                        }
                        for s in servings
                    }
                ),
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


def day_taxonomy(
    context: dg.AssetExecutionContext, root: Path, dt: str, scheme: Scheme, serving: Serving
) -> TaxonomyDifference:
    """The serving model's targets against the day's taxonomy (clean/tags of `dt`); without that
    partition nothing is masked, and the log says so."""
    tags_dir = partition_dir(root, CLEAN_LAYER, TAGS, dt)
    if not (tags_dir / PART_FILE).exists():
        context.log.warning(f"{scheme.name}: no clean/tags {dt}: labels retired since training are not masked")
        return TaxonomyDifference()
    tags = read_partition(root, CLEAN_LAYER, TAGS, dt).collect()
    difference = taxonomy_difference(list(serving.champion.model.targets), current_targets(scheme, tags))
    if difference.retired or difference.added:
        context.log.info(f"{scheme.name}: taxonomy changed since training: {difference.to_dict()}")
    return difference


def drift_verdict(source: Path, dt: str) -> dict:
    """The verdict daily_labels wrote next to partition `dt` ({} when it wrote none)."""
    if not (source / PART_FILE).exists():
        raise FileNotFoundError(f"predictions/daily_labels has no partition {dt} at {source}; materialize it first")
    return json.loads((source / DRIFT_FILE).read_text(encoding="utf-8")) if (source / DRIFT_FILE).exists() else {}


def resolve_servings(
    context: dg.AssetExecutionContext,
    config: PredictRunConfig,
    uri: str,
    budgets: dict[str, float | None],
    datasets_dir: Path,
) -> list[Serving]:
    """predict/champion.py's load_servings; schemes without a champion fail the run (dg.Failure), or
    are skipped with a warning when the run config allows it; so does a scheme no model may serve."""
    try:
        servings, skipped = load_servings(
            uri,
            budgets,
            datasets_dir,
            schemes=config.schemes,
            pins=config.pins(),
            budget_overrides=config.inference_budgets_s_per_100k,
            skip_missing=config.skip_schemes_without_champion,
            log=context.log.info,
            source=f"dagster run {context.run.run_id} (predictions/daily_labels {context.partition_key})",
        )
    except MissingChampionsError as exc:
        # dg.Failure: the UI shows its description first, not a wrapped stack trace
        raise dg.Failure(description=str(exc), metadata={"schemes_without_champion": len(exc.messages)}) from exc
    except ServingError as exc:
        raise dg.Failure(description=str(exc)) from exc
    for message in skipped:
        context.log.warning(f"skipped: {message}")
    return servings


def load_runners_up(
    context: dg.AssetExecutionContext, config: PredictRunConfig, uri: str, champions: list[Champion]
) -> dict[str, Champion]:
    """scheme → the champion of its configured runner-up kind (run config runner_up_kinds); a kind
    without a champion fails the run with the reason, the serving kind itself is refused."""
    serving = {c.scheme: c for c in champions}
    unknown = sorted(set(config.runner_up_kinds) - set(serving))
    if unknown:
        raise dg.Failure(description=f"runner_up_kinds names schemes this run does not predict: {unknown}")
    runners_up = {}
    for scheme, kind in config.runner_up_kinds.items():
        if kind == serving[scheme].kind:
            raise dg.Failure(description=f"runner_up_kinds: {scheme}'s runner-up {kind!r} is its serving kind")
        try:
            runners_up[scheme] = load_champion(uri, scheme, [kind])
        except NoChampionError as exc:
            raise dg.Failure(description=f"runner_up_kinds: {exc}") from exc
        runners_up[scheme] = replace(
            runners_up[scheme], model=mask_retired(runners_up[scheme].model, serving[scheme].masked),
            masked=serving[scheme].masked,
        )  # fmt: skip
        context.log.info(f"{scheme}: runner-up {runners_up[scheme].describe()}")
    return runners_up


def predict_schemes(
    context: dg.AssetExecutionContext,
    champions: list[Champion],
    corpus: pl.DataFrame,
    root: Path,
    config: PredictRunConfig,
    runners_up: dict[str, Champion] | None = None,
) -> tuple[pl.DataFrame, dict[str, DriftResult | str], dict[str, float]]:
    """(every champion's rows in TABLE_COLUMNS, label drift per scheme, seconds each took to predict);
    a scheme with a runner-up also gets that model's labels in runner_up_labels."""
    runners_up = runners_up or {}
    predicted_at = datetime.now(UTC)
    frames, drifts, seconds = [], {}, {}
    for champion in champions:
        scheme = champion.scheme

        def progress(done: int, total: int, scheme: str = scheme) -> None:
            context.log.info(f"{scheme}: predicted {done:,} / {total:,} items")

        started = time.perf_counter()
        rows = predict_items(corpus, champion.model, config.batch_size, progress, config.top_k or None)
        seconds[scheme] = time.perf_counter() - started
        dataset_dir = root / DATASETS_LAYER / scheme
        drifts[scheme] = scheme_label_drift(champion, rows, dataset_dir, root / REFERENCE_CACHE, config)
        rows = with_model_columns(rows, champion.name, champion.version, champion.run_id, predicted_at)
        if scheme in runners_up:
            second = predict_items(corpus, runners_up[scheme].model, config.batch_size, None, config.top_k or None)
            rows = rows.with_columns(second["labels"].alias(RUNNER_UP_LABELS))
        else:
            rows = rows.with_columns(pl.lit(None, pl.List(pl.String)).alias(RUNNER_UP_LABELS))
        frames.append(rows.with_columns(pl.lit(scheme).alias("scheme")).select(TABLE_COLUMNS))
    return pl.concat(frames), drifts, seconds


def scheme_label_drift(
    champion: Champion, rows: pl.DataFrame, dataset_dir: Path, cache_dir: Path, config: PredictRunConfig
):
    """The scheme's DriftResult, or a string saying why there is no reference to compare with."""
    try:
        reference = cached_reference_profile(
            cache_dir, champion.profile_id(), champion.model, dataset_dir, config.reference_splits,
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


def drift_alert(dt: str, run_id: str, label_check: dg.AssetCheckResult) -> Alert:
    report = label_check.metadata.get("report")
    return Alert(
        what=f"label drift ERROR: predictions/{DAILY_LABELS} {dt} is held back from publishing",
        partition=dt,
        run_id=run_id,
        details={"check": label_check.description, "report": str(getattr(report, "value", ""))[:4000]},
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


def model_json(serving: Serving, seconds: float, items: int) -> dict:
    champion = serving.champion
    return {
        "name": champion.name,
        "kind": champion.kind,
        "version": champion.version,
        "run_id": champion.run_id,
        "shipped": champion.model.shipped_targets(),
        "why": serving.record.reason,
        "decision": serving.source,
        "compared": serving.record.rows,
        "predict_seconds": round(seconds, 3),
        # this run's own cost, next to the one measured when deciding (rough on a small day)
        "predict_seconds_per_100k": round(100_000 * seconds / items, 1) if items else None,
    }


def serving_markdown(serving: Serving) -> str:
    return f"Decision: {serving.source}.\n\n{serving.record.markdown()}"


class ServingRunConfig(dg.Config):
    """Run config of models/<scheme>/serving."""

    metric: str = Field(DEFAULT_METRIC, description="test metric the champions are compared by")


def build_serving_assets(schemes: list[Scheme]) -> list[dg.AssetsDefinition]:
    return [build_serving_asset(s) for s in schemes]


def build_serving_asset(scheme: Scheme) -> dg.AssetsDefinition:
    kinds = [*enabled_kinds(), "ensemble"]
    budget = scheme.inference_budget_s_per_100k

    @dg.asset(
        key=serving_key(scheme.name),
        deps=[dg.AssetKey(["models", scheme.name, kind]) for kind in kinds],
        group_name="models",
        kinds={"mlflow"},
        pool=TRAINING_POOL,  # measures inference speed: not while a training shares the cores
        description=f"Which model labels {scheme.name}'s days: every kind's champion scored on the current test "
        f"split; the best by the metric within the inference budget "
        f"({'none' if budget is None else f'{budget:,.0f} s per 100k items'}; ties go to the cheaper kind) is "
        f"recorded on the registered model {serving_model_name(scheme.name)} (tags serving.*).",
    )
    def serving(
        context: dg.AssetExecutionContext, config: ServingRunConfig, lake: LakeResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        pool = pool_metadata(context, TRAINING_POOL)
        try:
            decided = decide_and_record(
                mlflow.uri(), scheme.name, lake.lake() / DATASETS_LAYER / scheme.name, budget, config.metric,
                context.log.info, source=f"dagster run {context.run.run_id} (models/{scheme.name}/serving)",
            )  # fmt: skip
        except (NoChampionError, ServingError) as exc:
            raise dg.Failure(description=str(exc)) from exc
        record = decided.record
        context.log.info(f"{scheme.name}: serving {record.describe()}: {record.reason}")
        return dg.MaterializeResult(
            metadata={
                "serving_model": record.describe(),
                "kind": record.kind,
                "reason": record.reason,
                "scores": dg.MetadataValue.md(record.markdown()),
                "metric": record.metric,
                "budget_s_per_100k": dg.MetadataValue.float(budget) if budget is not None else "none",
                "device": record.device,
                "registry": f"{serving_model_name(scheme.name)} (tags serving.*)",
                "champions": dg.MetadataValue.json(record.champions),
                **pool,
            }
        )

    return serving
