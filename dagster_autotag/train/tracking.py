"""One MLflow run around one training: params, per-epoch and test metrics, evaluation artifacts, the
pyfunc registered with alias `challenger`, then the promotion gate that moves `champion`.

No Dagster: the caller passes where to track (anything with MlflowResource's `run` and `run_url`),
the training as `fit(dataset_dir, on_epoch) -> TrainingResult` and where to log (the asset's
context.log; by default this module's standard logger), and gets a TrackedRun back (train/assets.py
turns it into asset metadata). mlflow, the model code and the evaluation are imported inside the
functions, like train/registry.py, so the code location that imports this module does not pay for them.
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
    shipped_labels: list[str]  # targets whose dev precision reached the floor
    rare_labels: list[str]
    test: Evaluation
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

    from dagster_autotag.train.registry import load_scheme_model, log_scheme_model, promote, registered_model_name
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
        summary = {k: v for k, v in result.test.summary.items() if isinstance(v, (int, float)) and v is not None}
        mlflow.log_metrics({f"test.{k}": float(v) for k, v in summary.items()})
        mlflow.log_metrics({f"seconds.{k}": v for k, v in result.seconds.items()})
        mlflow.log_metrics(inference_metrics(result.model, dataset_dir))
        with tempfile.TemporaryDirectory() as tmp:
            artifacts, model_dir = Path(tmp) / "artifacts", Path(tmp) / "model"
            artifacts.mkdir()
            result.model.save(model_dir)
            pr_curves = write_artifacts(artifacts, result, manifest)
            if pr_curves.note:
                log.warning(f"PR curves: {pr_curves.note}")
            mlflow.log_artifacts(str(artifacts), artifact_path="evaluation")
            logged = log_scheme_model(model_dir, name, _example_texts(dataset_dir))
        test = SplitData.read(dataset_dir / "test.parquet", manifest["labels"])
        decision = promote(
            name, lambda uri: score_on_split(load_scheme_model(uri), test, promotion_metric), promotion_tolerance
        )
        mlflow.set_tags(
            {"promotion": "promoted" if decision.promoted else "kept champion", "promotion.reason": decision.reason}
        )
        run_id = run.info.run_id
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
    }


def write_artifacts(folder: Path, result: TrainingResult, manifest: dict) -> Chart:
    """evaluation/: label map, thresholds, metrics, PR curves, bad cases, per-label and confusion tables.
    Returns the PR-curve Chart (drawn once: artifact and metadata)."""
    from dagster_autotag.train.evaluate import to_json

    (folder / "label_map.json").write_text(
        json.dumps({"targets": result.model.targets, "rare_labels": result.rare_labels}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    model = result.model
    if model.thresholds is not None:
        thresholds = model.thresholds.to_dict(model.targets)
    else:  # an agreement ensemble decides with each member's own thresholds
        thresholds = {"agreement_of": [{"kind": m.kind, **m.thresholds.to_dict(m.targets)} for m in model.members]}
    (folder / "thresholds.json").write_text(json.dumps(thresholds, ensure_ascii=False, indent=1), encoding="utf-8")
    metrics = {"test": to_json(result.test), "dev": to_json(result.dev), "seconds": result.seconds, "dataset": manifest}
    (folder / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=1), encoding="utf-8")
    result.test.bad_cases.write_csv(folder / "bad_cases.csv")
    result.test.per_label.write_csv(folder / "per_label.csv")
    result.test.co_occurrence_errors.write_csv(folder / "co_occurrence_errors.csv")
    return result.test.pr_curve_chart(folder / "pr_curves.png")


def per_label_markdown(per_label: pl.DataFrame, shipped: set[str], rare: set[str]) -> str:
    lines = [
        "| label | P | R | F1 | support | right / predict / standard | ship |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in per_label.iter_rows(named=True):
        flag = ("✅" if r["label"] in shipped else "❌ below precision floor") + (
            " · rare" if r["label"] in rare else ""
        )
        lines.append(
            f"| {r['label']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} | "
            f"{r['right']} / {r['predict']} / {r['standard']} | {flag} |"
        )
    return "\n".join(lines)


def _example_texts(dataset_dir: Path) -> list[str]:
    import polars as pl

    return pl.read_parquet(dataset_dir / "test.parquet", columns=["text"]).head(EXAMPLE_TEXTS)["text"].to_list()
