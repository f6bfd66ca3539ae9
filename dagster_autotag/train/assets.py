"""models/<scheme>/<kind>: train on datasets/<scheme>, track in MLflow, register, promote.

One asset per scheme and model type (linear, textcnn; bert when AUTOTAG_BERT_MODEL_DIR names a
local transformers directory). Each materialisation is one MLflow run (train/tracking.py): params,
per-epoch metrics, test metrics, artifacts, the pyfunc registered with alias `challenger`, then the
promotion gate that moves `champion`. All training assets share the pool `autotag_training`
(limit 1 in the instance's dagster.yaml), so only one training runs at a time; that is for cost
only (pools.py): without the limit they run at once, safely, and each says so in its run log.

Run config: TrainRunConfig (thresholds, promotion) plus every option of the model type's dataclass
(train/configs.py), derived by run_config.py, so an option is declared once.
"""

import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.layers import DATASETS_LAYER
from dagster_autotag.metadata import path_value
from dagster_autotag.pools import TRAINING_POOL, pool_metadata
from dagster_autotag.resources import LakeResource, MlflowResource
from dagster_autotag.run_config import config_from_dataclass
from dagster_autotag.train.configs import BertTrainConfig, KNNConfig, LinearConfig, TextCNNConfig, TrainingOptions
from dagster_autotag.train.tracking import Fit, TrackedRun, per_label_markdown, track_and_register

BERT_DIR_ENV = "AUTOTAG_BERT_MODEL_DIR"
ENCODER_DIR_ENV = "AUTOTAG_ENCODER_DIR"  # the knn kind's sentence encoder (e.g. e5-small)


class TrainRunConfig(config_from_dataclass(TrainingOptions)):
    """Shared by every model type's run config: thresholds and promotion (TrainingOptions)."""

    def training_options(self) -> TrainingOptions:
        return TrainingOptions(**{name: getattr(self, key) for name, key in TrainRunConfig.config_keys.items()})


class LinearRunConfig(config_from_dataclass(LinearConfig, base=TrainRunConfig, rename={"C": "c"})):
    """Run config of models/<scheme>/linear: TrainRunConfig and every LinearConfig option."""


class TextCNNRunConfig(config_from_dataclass(TextCNNConfig, base=TrainRunConfig, rename={"top_k": "pooling_top_k"})):
    """Run config of models/<scheme>/textcnn: TrainRunConfig and every TextCNNConfig option (its `top_k`, the
    pooling, is `pooling_top_k` here: TrainRunConfig's `top_k` caps the sub-labels per item)."""


def model_dir_field(env: str) -> dict:
    return {"model_dir": (str, Field("", description=f"local transformers directory; empty = ${env}"))}


def local_model_dir(value: str, env: str, kind: str) -> str:
    model_dir = value or os.environ.get(env, "")
    if not model_dir or not Path(model_dir).is_dir():
        raise ValueError(
            f"{kind} needs a local transformers directory: set {env} or model_dir in run config (got {model_dir!r})"
        )
    return model_dir


class BertRunConfig(config_from_dataclass(BertTrainConfig, base=TrainRunConfig, fields=model_dir_field(BERT_DIR_ENV))):
    """Run config of models/<scheme>/bert: TrainRunConfig and every BertTrainConfig option."""

    def to_dataclass(self) -> BertTrainConfig:
        return super().to_dataclass(model_dir=local_model_dir(self.model_dir, BERT_DIR_ENV, "BERT"))


class KNNRunConfig(config_from_dataclass(KNNConfig, base=TrainRunConfig, fields=model_dir_field(ENCODER_DIR_ENV))):
    """Run config of models/<scheme>/knn: TrainRunConfig and every KNNConfig option."""

    def to_dataclass(self) -> KNNConfig:
        return super().to_dataclass(model_dir=local_model_dir(self.model_dir, ENCODER_DIR_ENV, "knn"))


CONFIGS = {"linear": LinearRunConfig, "textcnn": TextCNNRunConfig, "bert": BertRunConfig, "knn": KNNRunConfig}


def enabled_kinds() -> list[str]:
    """linear and textcnn always; bert and knn when their encoder directory is configured."""
    optional = [("bert", BERT_DIR_ENV), ("knn", ENCODER_DIR_ENV)]
    return ["linear", "textcnn"] + [kind for kind, env in optional if os.environ.get(env)]


def build_training_assets(schemes: list[Scheme]) -> list[dg.AssetsDefinition]:
    per_kind = [build_training_asset(s, kind) for s in schemes for kind in enabled_kinds()]
    return per_kind + [build_ensemble_asset(s) for s in schemes]


def build_training_asset(scheme: Scheme, kind: str) -> dg.AssetsDefinition:
    config_class = CONFIGS[kind]

    @dg.asset(
        key=dg.AssetKey(["models", scheme.name, kind]),
        deps=[dg.AssetKey([DATASETS_LAYER, scheme.name])],
        group_name="models",
        kinds={"pytorch" if kind != "linear" else "scikitlearn", "mlflow"},
        pool=TRAINING_POOL,
        description=f"{kind} gate + sub-label models for {scheme.name}: thresholds tuned on dev, evaluated on test, "
        f"logged to MLflow and registered as autotag.{scheme.name}.{kind} (alias challenger → champion if not worse).",
    )
    def train_model(
        context: dg.AssetExecutionContext, config: config_class, lake: LakeResource, mlflow: MlflowResource
    ):
        return run_training(context, scheme, kind, config, lake, mlflow)

    return train_model


def run_training(
    context: dg.AssetExecutionContext,
    scheme: Scheme,
    kind: str,
    config: "LinearRunConfig | TextCNNRunConfig | BertRunConfig",
    lake: LakeResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    from dagster_autotag.train.scheme_model import train_scheme_model

    options = config.training_options()
    model_config = config.to_dataclass()
    launch_facts: dict = {}  # what a torchrun launch reports (world size, backend, command)

    def fit(dataset_dir: Path, on_epoch):
        if kind == "bert" and model_config.nproc_per_node > 0:
            from dagster_autotag.train.distributed_assets import train_with_torchrun

            return train_with_torchrun(context, model_config, options, dataset_dir, on_epoch, launch_facts)
        return train_scheme_model(kind, model_config, dataset_dir, options, on_epoch)

    return track(context, scheme, kind, config, lake, mlflow, fit, extra_metadata=launch_facts)


def track(
    context: dg.AssetExecutionContext,
    scheme: Scheme,
    kind: str,
    config: TrainRunConfig,
    lake: LakeResource,
    mlflow: MlflowResource,
    fit: Fit,
    extra_metadata: dict | None = None,
) -> dg.MaterializeResult:
    """`fit` in one MLflow run (train/tracking.py), reported as the asset's metadata (plus
    `extra_metadata`, filled by `fit` while it runs)."""
    pool = pool_metadata(context, TRAINING_POOL)
    tracked = track_and_register(
        mlflow,
        scheme.name,
        kind,
        lake.lake() / DATASETS_LAYER / scheme.name,
        fit,
        params=config.model_dump(),
        promotion_metric=config.promotion_metric,
        promotion_tolerance=config.promotion_tolerance,
        log=context.log,
    )
    return dg.MaterializeResult(metadata={**training_metadata(tracked), **(extra_metadata or {}), **pool})


def training_metadata(tracked: TrackedRun) -> dict:
    shipped = set(tracked.shipped_labels)
    return {
        "mlflow_run": dg.MetadataValue.text(tracked.run_url),
        "mlflow_run_id": tracked.run_id,
        "registered_model": tracked.registered_model,
        "promoted": tracked.promotion.promoted,
        "promotion": tracked.promotion.reason,
        **{f"test_{k}": round(float(v), 4) for k, v in tracked.summary.items() if k.startswith(("micro", "macro"))},
        "shipped_labels": dg.MetadataValue.json(sorted(shipped)),
        **{f"labels_{s.replace(' ', '_')}": n for s, n in tracked.status_counts.items()},
        "thresholds_tuned_on": tracked.tuned_on,
        "taxonomy_changes": dg.MetadataValue.json(tracked.taxonomy),
        "per_label": dg.MetadataValue.md(
            per_label_markdown(tracked.per_label, set(tracked.rare_labels), tracked.tuned_on)
        ),
        "pr_curves": dg.MetadataValue.md(tracked.pr_curves.markdown("PR curves")),
        "dataset": path_value(tracked.dataset_dir),
    }


class EnsembleRunConfig(TrainRunConfig):
    method: str = Field("agreement", description="mean | agreement (both must fire: higher precision)")
    members: list[str] = Field([], description="model types to combine; empty = textcnn+bert, or linear+textcnn")


def default_ensemble_members() -> list[str]:
    return ["textcnn", "bert"] if "bert" in enabled_kinds() else ["linear", "textcnn"]


def build_ensemble_asset(scheme: Scheme) -> dg.AssetsDefinition:
    members = default_ensemble_members()

    @dg.asset(
        key=dg.AssetKey(["models", scheme.name, "ensemble"]),
        deps=[dg.AssetKey(["models", scheme.name, kind]) for kind in members],
        group_name="models",
        kinds={"mlflow"},
        pool=TRAINING_POOL,
        description=f"Ensemble of the {' and '.join(members)} champions for {scheme.name} (mean, or agreement for "
        f"precision), evaluated on the same test split and registered as autotag.{scheme.name}.ensemble.",
    )
    def ensemble(
        context: dg.AssetExecutionContext, config: EnsembleRunConfig, lake: LakeResource, mlflow: MlflowResource
    ):
        fit = ensemble_fit(scheme, config.members or members, config)
        return track(context, scheme, "ensemble", config, lake, mlflow, fit)

    return ensemble


def ensemble_fit(scheme: Scheme, kinds: list[str], config: EnsembleRunConfig) -> Fit:
    """Combines the champions of `kinds`; runs inside the MLflow run, so the registry is set."""

    def fit(dataset_dir: Path, on_epoch):
        from dagster_autotag.train.ensemble import build_ensemble
        from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name

        uris = [f"models:/{registered_model_name(scheme.name, k)}@{CHAMPION}" for k in kinds]
        champions = [load_scheme_model(uri) for uri in uris]
        return build_ensemble(champions, config.method, dataset_dir, config.training_options())

    return fit
