"""models/<scheme>/<kind>: train on datasets/<scheme>, track in MLflow, register, promote.

One asset per scheme and model type (linear, textcnn; bert when AUTOTAG_BERT_MODEL_DIR names a
local transformers directory). Each materialisation is one MLflow run: params, per-epoch
metrics, test metrics, artifacts, the pyfunc registered with alias `challenger`, then the
promotion gate that moves `champion`. All training assets share the pool `autotag_training`
(limit 1 in the instance's dagster.yaml), so only one training runs at a time.
"""

import json
import os
import tempfile
from pathlib import Path

import dagster as dg
from pydantic import Field

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.corpus.dataset import DATASETS_LAYER, MANIFEST
from dagster_autotag.metadata import path_value
from dagster_autotag.resources import LakeResource, MlflowResource

TRAINING_POOL = "autotag_training"
BERT_DIR_ENV = "AUTOTAG_BERT_MODEL_DIR"


class TrainConfig(dg.Config):
    threshold_mode: str = Field("precision_floor", description="precision_floor | f1")
    precision_floor: float = Field(0.8, description="a label must reach this dev precision to ship")
    top_k: int = Field(0, description="at most k sub-labels per item (0 = no cap); stored with the model")
    promotion_metric: str = Field("micro_f1", description="test metric compared with the champion's")
    promotion_tolerance: float = Field(0.005, description="challenger may be this much below the champion")


class LinearTrainConfig(TrainConfig):
    ngram_max: int = 3
    min_df: int = 2
    c: float = 4.0
    class_weight_balanced: bool = True

    def model_config_object(self):
        from dagster_autotag.train.linear import LinearConfig

        return LinearConfig(
            ngram_range=(1, self.ngram_max),
            min_df=self.min_df,
            C=self.c,
            class_weight="balanced" if self.class_weight_balanced else None,
        )


class TextCNNTrainConfig(TrainConfig):
    tokenizer: str = "char"
    max_len: int = 128
    embed_dim: int = 0  # 0: the vectors' dimension, else 128
    kernel_sizes: list[int] = [2, 3, 4]
    num_filters: int = 128
    pooling_top_k: int = 1
    dropout: float = 0.5
    lr: float = 1e-3
    embedding_lr: float | None = None  # None: lr
    weight_decay: float = 0.0
    lr_decay: float = 1.0  # learning rates are multiplied by this after each epoch
    ngram_buckets: int = 0  # > 0: hashed token-bigram channel with this many buckets (see BENCHMARKS.md)
    embedding_dropout: float = 0.0
    batch_size: int = 64
    max_epochs: int = 10
    patience: int = 2
    vectors_npy: str = ""  # e.g. ../shared/datasets/char_vectors/tencent_char_200d.npy
    vectors_vocab: str = ""
    freeze_embeddings: bool = False
    num_threads: int = 2
    seed: int = 0

    def model_config_object(self):
        from dagster_autotag.train.textcnn import TextCNNConfig

        return TextCNNConfig(
            tokenizer=self.tokenizer,
            max_len=self.max_len,
            embed_dim=self.embed_dim or None,
            kernel_sizes=tuple(self.kernel_sizes),
            num_filters=self.num_filters,
            top_k=self.pooling_top_k,
            dropout=self.dropout,
            lr=self.lr,
            embedding_lr=self.embedding_lr,
            weight_decay=self.weight_decay,
            lr_decay=self.lr_decay,
            ngram_buckets=self.ngram_buckets,
            embedding_dropout=self.embedding_dropout,
            batch_size=self.batch_size,
            max_epochs=self.max_epochs,
            patience=self.patience,
            vectors_npy=self.vectors_npy or None,
            vectors_vocab=self.vectors_vocab or None,
            freeze_embeddings=self.freeze_embeddings,
            num_threads=self.num_threads,
            seed=self.seed,
        )


class BertTrainConfigDg(TrainConfig):
    model_dir: str = Field("", description=f"local transformers directory; empty = ${BERT_DIR_ENV}")
    max_len: int = 128
    batch_size: int = 32
    lr: float = 3e-5
    max_epochs: int = 3
    warmup_ratio: float = 0.1
    patience: int = 2
    num_threads: int = 2
    seed: int = 0

    def model_config_object(self):
        from dagster_autotag.train.bert import BertTrainConfig

        model_dir = self.model_dir or os.environ.get(BERT_DIR_ENV, "")
        if not model_dir or not Path(model_dir).is_dir():
            raise ValueError(
                f"BERT needs a local transformers directory: set {BERT_DIR_ENV} or model_dir in run config "
                f"(got {model_dir!r})"
            )
        return BertTrainConfig(
            model_dir=model_dir,
            max_len=self.max_len,
            batch_size=self.batch_size,
            lr=self.lr,
            max_epochs=self.max_epochs,
            warmup_ratio=self.warmup_ratio,
            patience=self.patience,
            num_threads=self.num_threads,
            seed=self.seed,
        )


CONFIGS = {"linear": LinearTrainConfig, "textcnn": TextCNNTrainConfig, "bert": BertTrainConfigDg}


def enabled_kinds() -> list[str]:
    return ["linear", "textcnn"] + (["bert"] if os.environ.get(BERT_DIR_ENV) else [])


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


def run_training(context, scheme: Scheme, kind: str, config: TrainConfig, lake: LakeResource, tracking: MlflowResource):
    from dagster_autotag.train.scheme_model import TrainingOptions, train_scheme_model

    options = TrainingOptions(config.threshold_mode, config.precision_floor, config.top_k or None)

    def fit(dataset_dir: Path, on_epoch):
        return train_scheme_model(kind, config.model_config_object(), dataset_dir, options, on_epoch)

    return track_and_register(context, scheme, kind, config, lake, tracking, fit)


def track_and_register(context, scheme: Scheme, kind: str, config: TrainConfig, lake, tracking: MlflowResource, fit):
    """One MLflow run around `fit(dataset_dir, on_epoch) -> TrainingResult`: params, per-epoch and
    test metrics, evaluation artifacts, the pyfunc registered as challenger, then the promotion gate."""
    import mlflow as mlflow_api

    from dagster_autotag.train.evaluate import to_json
    from dagster_autotag.train.registry import load_scheme_model, log_scheme_model, promote, registered_model_name
    from dagster_autotag.train.scheme_model import SplitData, score_on_split

    dataset_dir = lake.lake() / DATASETS_LAYER / scheme.name
    if not (dataset_dir / MANIFEST).exists():
        raise FileNotFoundError(f"no dataset at {dataset_dir}: materialize datasets/{scheme.name} first")
    manifest = json.loads((dataset_dir / MANIFEST).read_text(encoding="utf-8"))
    name = registered_model_name(scheme.name, kind)

    with tracking.run(run_name=f"{scheme.name}-{kind}", tags={"scheme": scheme.name, "kind": kind}) as run:
        mlflow_api.log_params({f"cfg.{k}": v for k, v in config.model_dump().items()})
        mlflow_api.log_params(
            {
                "dataset.window": f"{manifest['window']['start']}..{manifest['window']['end']}",
                **{f"dataset.rows.{s}": n for s, n in manifest["rows"].items()},
                "dataset.labels": len(manifest["labels"]),
            }
        )

        def on_epoch(task: str, epoch: int, metrics: dict) -> None:
            mlflow_api.log_metrics({f"{task}.{k}": float(v) for k, v in metrics.items()}, step=epoch)
            context.log.info(f"{task} epoch {epoch}: {metrics}")

        result = fit(dataset_dir, on_epoch)
        summary = {k: v for k, v in result.test.summary.items() if isinstance(v, (int, float)) and v is not None}
        mlflow_api.log_metrics({f"test.{k}": float(v) for k, v in summary.items()})
        mlflow_api.log_metrics({f"seconds.{k}": v for k, v in result.seconds.items()})
        with tempfile.TemporaryDirectory() as tmp:
            artifacts, model_dir = Path(tmp) / "artifacts", Path(tmp) / "model"
            artifacts.mkdir()
            result.model.save(model_dir)
            pr_curves = write_artifacts(artifacts, result, manifest, to_json)
            if pr_curves.note:
                context.log.warning(f"PR curves: {pr_curves.note}")
            mlflow_api.log_artifacts(str(artifacts), artifact_path="evaluation")
            logged = log_scheme_model(model_dir, name, _example_texts(dataset_dir))
        test = SplitData.read(dataset_dir / "test.parquet", manifest["labels"])
        decision = promote(
            name,
            lambda uri: score_on_split(load_scheme_model(uri), test, config.promotion_metric),
            config.promotion_tolerance,
        )
        mlflow_api.set_tags(
            {"promotion": "promoted" if decision.promoted else "kept champion", "promotion.reason": decision.reason}
        )
        run_id = run.info.run_id
    context.log.info(f"{name} v{logged.version}: {decision.reason}")
    shipped = set(result.shipped_labels())
    return dg.MaterializeResult(
        metadata={
            "mlflow_run": dg.MetadataValue.text(tracking.run_url(run_id)),
            "mlflow_run_id": run_id,
            "registered_model": f"{name} v{logged.version}",
            "promoted": decision.promoted,
            "promotion": decision.reason,
            **{f"test_{k}": round(float(v), 4) for k, v in summary.items() if k.startswith(("micro", "macro"))},
            "shipped_labels": dg.MetadataValue.json(sorted(shipped)),
            "per_label": dg.MetadataValue.md(
                per_label_markdown(result.test.per_label, shipped, set(result.rare_labels))
            ),
            "pr_curves": dg.MetadataValue.md(pr_curves.markdown("PR curves")),
            "dataset": path_value(dataset_dir),
        }
    )


class EnsembleConfig(TrainConfig):
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
    def ensemble(context: dg.AssetExecutionContext, config: EnsembleConfig, lake: LakeResource, mlflow: MlflowResource):
        from dagster_autotag.train.ensemble import build_ensemble
        from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name

        kinds = config.members or members

        def fit(dataset_dir: Path, on_epoch):  # runs inside the MLflow run, so the registry is set
            uris = [f"models:/{registered_model_name(scheme.name, k)}@{CHAMPION}" for k in kinds]
            champions = [load_scheme_model(uri) for uri in uris]
            return build_ensemble(
                champions,
                config.method,
                dataset_dir,
                config.threshold_mode,
                config.precision_floor,
                config.top_k or None,
            )

        return track_and_register(context, scheme, "ensemble", config, lake, mlflow, fit)

    return ensemble


def write_artifacts(folder: Path, result, manifest: dict, to_json):
    """Returns the PR-curve Chart (drawn once: artifact and metadata)."""
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


def per_label_markdown(per_label, shipped: set[str], rare: set[str]) -> str:
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

    return pl.read_parquet(dataset_dir / "test.parquet", columns=["text"]).head(3)["text"].to_list()
