"""One MLflow run around one training: params, per-epoch and test metrics, evaluation artifacts, the
pyfunc registered with alias `challenger`, then the promotion gate that moves `champion`.

No Dagster: the caller passes where to track (anything with MlflowResource's `run` and `run_url`),
the training as `fit(dataset_dir, on_epoch) -> TrainingResult` and where to log (the asset's
context.log; by default this module's standard logger), and gets a TrackedRun back (train/assets.py
turns it into asset metadata). mlflow, the model code and the evaluation are imported inside the
functions, like train/registry.py, so the code location that imports this module does not pay for them.

Safe when several processes track at once (Dagster steps without pool limits, torchrun ranks, a
service): the store is opened with train/store.py's `open_store` (re-exported here: call it on a
tracking URI before the first mlflow call in a process of your own), which creates and migrates
a sqlite store under a file lock; alias moves and promotion hold the registered model's lock.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dagster_autotag.corpus.dataset import MANIFEST
from dagster_autotag.train.registry import Promotion
from dagster_autotag.train.store import open_store as open_store  # re-exported: see the module docstring

if TYPE_CHECKING:
    import polars as pl

    from dagster_autotag.charts import Chart
    from dagster_autotag.train.evaluate import Evaluation
    from dagster_autotag.train.scheme_model import EpochCallback, TrainingResult

EXAMPLE_TEXTS = 3  # test texts logged as the pyfunc's input example
logger = logging.getLogger(__name__)


class TrackingStore(Protocol):
    """Where runs go: MlflowResource (resources.py) is one."""

    def run(self, run_name: str, tags: dict[str, str] | None = None) -> AbstractContextManager[Any]: ...

    def run_url(self, run_id: str) -> str: ...


class Log(Protocol):
    """A logging.Logger, or Dagster's context.log."""

    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...


Fit = Callable[[Path, "EpochCallback"], "TrainingResult"]


@dataclass
class TrackedRun:
    run_id: str
    run_url: str  # the server's UI for http(s) stores, else the local store and ids
    registered_name: str  # autotag.<scheme>.<kind>
    version: str  # registered version of this run's model (alias challenger)
    promotion: Promotion
    summary: dict[str, float]  # test metrics, the numeric ones (as logged: test.<name>)
    shipped_labels: list[str]  # targets whose precision bound reached the floor
    rare_labels: list[str]
    test: Evaluation
    per_label: pl.DataFrame  # test figures with each label's status and tuning interval (per_label.csv)
    status_counts: dict[str, int]  # shipped / needs data / below floor
    tuned_on: str  # what thresholds were tuned on, e.g. "oof(5)+dev", with the note why not when dev only
    taxonomy: dict  # targets added/retired since the previous champion (taxonomy_changes)
    pr_curves: Chart  # the test split's, drawn once: evaluation/pr_curves.png and asset metadata
    dataset_dir: Path

    @property
    def registered_model(self) -> str:
        return f"{self.registered_name} v{self.version}"


def track_and_register(
    store: TrackingStore,
    scheme: str,
    kind: str,
    dataset_dir: Path,
    fit: Fit,
    *,
    params: Mapping[str, Any],
    promotion_metric: str,
    promotion_tolerance: float,
    log: Log = logger,
) -> TrackedRun:
    """`params`: the run's options, logged as `cfg.<name>`. The challenger is promoted when its
    `promotion_metric` on the test split is at least the champion's minus `promotion_tolerance`."""
    import mlflow

    from dagster_autotag.train.registry import (
        champion_targets,
        load_scheme_model,
        log_scheme_model,
        promote,
        registered_model_name,
    )
    from dagster_autotag.train.scheme_model import SplitData, score_on_split

    if not (dataset_dir / MANIFEST).exists():
        raise FileNotFoundError(f"no dataset at {dataset_dir}: materialize datasets/{scheme} first")
    manifest = json.loads((dataset_dir / MANIFEST).read_text(encoding="utf-8"))
    name = registered_model_name(scheme, kind)

    with store.run(run_name=f"{scheme}-{kind}", tags={"scheme": scheme, "kind": kind}) as run:
        mlflow.log_params({f"cfg.{k}": v for k, v in params.items()})
        mlflow.log_params(dataset_params(manifest))

        def on_epoch(task: str, epoch: int, metrics: dict) -> None:
            mlflow.log_metrics({f"{task}.{k}": float(v) for k, v in metrics.items()}, step=epoch)
            log.info(f"{task} epoch {epoch}: {metrics}")

        result = fit(dataset_dir, on_epoch)
        taxonomy = taxonomy_changes(*champion_targets(name), result.model.targets)
        if taxonomy["added"] or taxonomy["retired"]:
            log.warning(f"targets changed since champion v{taxonomy['previous_champion']}: {taxonomy}")
        summary = {k: v for k, v in result.test.summary.items() if isinstance(v, (int, float)) and v is not None}
        mlflow.log_metrics({f"test.{k}": float(v) for k, v in summary.items()})
        mlflow.log_metrics({f"seconds.{k}": v for k, v in result.seconds.items()})
        mlflow.log_metrics(inference_metrics(result.model, dataset_dir))
        counts = result.model.thresholds.counts
        mlflow.log_metrics({f"shipping.{k.replace(' ', '_')}": n for k, n in counts.items()})
        mlflow.set_tag("thresholds.tuned_on", tuned_on(result.model.thresholds))
        with tempfile.TemporaryDirectory() as tmp:
            artifacts, model_dir = Path(tmp) / "artifacts", Path(tmp) / "model"
            artifacts.mkdir()
            result.model.save(model_dir)
            pr_curves, per_label = write_artifacts(artifacts, result, manifest)
            if pr_curves.note:
                log.warning(f"PR curves: {pr_curves.note}")
            mlflow.log_artifacts(str(artifacts), artifact_path="evaluation")
            logged = log_scheme_model(model_dir, name, _example_texts(dataset_dir))
        test = SplitData.read(dataset_dir / "test.parquet", manifest["labels"])
        targets = ["+".join(manifest["gate"]), *manifest["labels"]]  # the split's, whatever a champion knows
        decision = promote(
            name,
            lambda uri: score_on_split(load_scheme_model(uri), test, promotion_metric, targets),
            promotion_tolerance,
            version=logged.version,  # this run's, whatever another run made challenger meanwhile
        )
        mlflow.set_tags(
            {"promotion": "promoted" if decision.promoted else "kept champion", "promotion.reason": decision.reason}
        )
        run_id = run.info.run_id
    if decision.promoted:
        from dagster_autotag.predict.model_changes import lake_of_dataset, model_changes_path, record_change

        record_change(
            scheme, "promotion", name, decision.challenger_version, decision.reason, f"mlflow run {run_id}",
            decision.champion_version, model_changes_path(lake_of_dataset(dataset_dir)),
        )  # fmt: skip
    log.info(f"{name} v{logged.version}: {decision.reason}")
    return TrackedRun(
        run_id=run_id,
        run_url=store.run_url(run_id),
        registered_name=name,
        version=logged.version,
        promotion=decision,
        summary=summary,
        shipped_labels=list(result.shipped_labels()),
        rare_labels=list(result.rare_labels),
        test=result.test,
        per_label=per_label,
        status_counts=counts,
        tuned_on=tuned_on(result.model.thresholds),
        taxonomy=taxonomy,
        pr_curves=pr_curves,
        dataset_dir=dataset_dir,
    )


def inference_metrics(model, dataset_dir: Path) -> dict[str, float]:
    """`inference.items_per_s` / `inference.seconds_per_100k` on the test texts, timed the way the daily
    run predicts (predict/serving.py; at most ~10 s, so BERT on CPU is timed on a few hundred texts).
    The serving choice measures again on the machine that decides; this is the record of the run's."""
    import polars as pl

    from dagster_autotag.predict.serving import measure_speed

    texts = pl.read_parquet(dataset_dir / "test.parquet", columns=["text"])["text"].fill_null("").to_list()
    speed = measure_speed(model, texts)
    return speed.metrics() if speed else {}


def dataset_params(manifest: dict) -> dict[str, Any]:
    return {
        "dataset.window": f"{manifest['window']['start']}..{manifest['window']['end']}",
        **{f"dataset.rows.{s}": n for s, n in manifest["rows"].items()},
        "dataset.labels": len(manifest["labels"]),
        # issue #14 §3: a softmax over the sub-labels, and how far the data agrees
        "dataset.exclusive": bool((manifest.get("exclusive") or {}).get("declared", False)),
        "dataset.several_labels_share": (manifest.get("exclusive") or {}).get("several_labels_share"),
    }


def tuned_on(thresholds) -> str:
    text = f"{thresholds.source}, {thresholds.tuning_rows} rows" if thresholds.tuning_rows else thresholds.source
    return f"{text} ({thresholds.note})" if thresholds.note else text


def taxonomy_changes(previous_version: str | None, previous: list[str] | None, current: list[str]) -> dict:
    """Targets added to / retired from the scheme since the previous champion: a model only ever
    predicts the targets it was trained on, so a new label waits for this model, a retired one
    is masked at prediction (predict/taxonomy.py)."""
    if previous is None:
        return {"previous_champion": previous_version, "added": [], "retired": []}
    return {
        "previous_champion": previous_version,
        "added": [t for t in current if t not in previous],
        "retired": [t for t in previous if t not in current],
    }


def write_artifacts(folder: Path, result: TrainingResult, manifest: dict) -> tuple[Chart, pl.DataFrame]:
    """evaluation/: label map, thresholds, metrics, PR curves, bad cases, per-label and confusion tables.
    Returns the PR-curve Chart (drawn once: artifact and metadata) and the per-label table."""
    from dagster_autotag.train.evaluate import to_json

    (folder / "label_map.json").write_text(
        json.dumps({"targets": result.model.targets, "rare_labels": result.rare_labels}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    model = result.model
    thresholds = model.thresholds.to_dict(model.targets)
    if getattr(model, "members", None):  # an ensemble: its members' own tables too
        thresholds["members"] = [{"kind": m.kind, **m.thresholds.to_dict(m.targets)} for m in model.members]
    (folder / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=1), encoding="utf-8")
    metrics = {"test": to_json(result.test), "dev": to_json(result.dev), "seconds": result.seconds, "dataset": manifest}
    (folder / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    result.test.bad_cases.write_csv(folder / "bad_cases.csv")
    per_label = with_shipping(result.test.per_label, thresholds)
    per_label.write_csv(folder / "per_label.csv")
    result.test.co_occurrence_errors.write_csv(folder / "co_occurrence_errors.csv")
    return result.test.pr_curve_chart(folder / "pr_curves.png"), per_label


SHIPPING_COLUMNS = {  # thresholds.json key → per_label column: the tuning set's figures at the chosen cut
    "status": "status",
    "threshold": "threshold",
    "tp": "tuning_tp",
    "predicted": "tuning_predicted",
    "precision": "tuning_precision",
    "precision_lower": "precision_lower",
    "precision_upper": "precision_upper",
}


def with_shipping(per_label: pl.DataFrame, thresholds: dict) -> pl.DataFrame:
    """The test per-label table with each label's shipping status and the precision interval it
    was decided on (thresholds.json's rows)."""
    import polars as pl

    rows = [{"label": r["label"], **{c: r.get(k) for k, c in SHIPPING_COLUMNS.items()}} for r in thresholds["labels"]]
    schema = {"label": pl.String, "status": pl.String, "tuning_tp": pl.Int64, "tuning_predicted": pl.Int64}
    shipping = pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None).with_columns(
        pl.col("threshold", "tuning_precision", "precision_lower", "precision_upper").cast(pl.Float64)
    )
    return per_label.join(shipping, on="label", how="left", maintain_order="left")


def per_label_markdown(per_label: pl.DataFrame, rare: set[str], source: str = "") -> str:
    """`per_label`: with_shipping's table. The interval is of the precision on the tuning set
    (`source`) at the label's threshold, the figure shipping is decided on."""
    tuned = f"tuned P [interval]{f' ({source})' if source else ''}"
    lines = [
        f"| label | P | R | F1 | support | right / predict / standard | {tuned} | ship |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in per_label.iter_rows(named=True):
        status = r.get("status") or "unknown"
        flag = ("✅" if status == "shipped" else f"❌ {status}") + (" · rare" if r["label"] in rare else "")
        lines.append(
            f"| {r['label']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} | "
            f"{r['right']} / {r['predict']} / {r['standard']} | {interval_text(r)} | {flag} |"
        )
    return "\n".join(lines)


def interval_text(row: dict) -> str:
    """e.g. `0.89 [0.80, 0.95] 40/45`; `—` where the model predates intervals."""
    if row.get("precision_lower") is None or row.get("tuning_precision") is None:
        return "—"
    return (
        f"{row['tuning_precision']:.2f} [{row['precision_lower']:.2f}, {row['precision_upper']:.2f}] "
        f"{row['tuning_tp']}/{row['tuning_predicted']}"
    )


def _example_texts(dataset_dir: Path) -> list[str]:
    import polars as pl

    return pl.read_parquet(dataset_dir / "test.parquet", columns=["text"]).head(EXAMPLE_TEXTS)["text"].to_list()
