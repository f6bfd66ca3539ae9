"""A tiny but real registry for the service tests: the keyword dataset of train/test_scheme_model.py under
<home>/lake/datasets/p0_newcar, linear models trained on it and registered in <home>/mlflow (sqlite), the
layout `autotag serve --home` reads."""

import json
from pathlib import Path

import pandas as pd

from dagster_autotag.train.configs import LinearConfig, TrainingOptions
from dagster_autotag.train.registry import CHAMPION, log_scheme_model, registered_model_name
from dagster_autotag.train.scheme_model import SchemeModel, train_scheme_model
from dagster_autotag_tests.train.test_scheme_model import GATE, LABELS, rows

SCHEME = "p0_newcar"
NAME = registered_model_name(SCHEME, "linear")


def write_dataset(home: Path) -> Path:
    path = home / "lake" / "datasets" / SCHEME
    path.mkdir(parents=True)
    for split, n, seed in (("train", 600, 0), ("dev", 200, 1), ("test", 200, 2)):
        rows(n, seed).write_parquet(path / f"{split}.parquet")
    manifest = {"scheme": SCHEME, "gate": [GATE], "labels": LABELS, "rare_labels": [], "window": {}}
    (path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return path


def use_store(home: Path) -> str:
    import mlflow

    root = home / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name("serve-test") is None:
        mlflow.create_experiment("serve-test", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment("serve-test")
    return uri


def train_linear(dataset: Path, tmp: Path) -> Path:
    result = train_scheme_model("linear", LinearConfig(min_df=1), dataset, TrainingOptions(threshold_folds=0))
    return result.model.save(tmp / "linear")


def stricter_copy(model_dir: Path, target: Path) -> Path:
    """The same model with a stricter gate threshold: another version whose answers differ on purpose."""
    model = SchemeModel.load(model_dir)
    model.thresholds.thresholds[0] = 0.995
    return model.save(target)


def register(model_dir: Path, texts: list[str]) -> str:
    import mlflow

    with mlflow.start_run():
        return log_scheme_model(model_dir, NAME, texts).version


def register_like_before(model_dir: Path, texts: list[str]) -> str:
    """A version as log_scheme_model wrote it before the pyfunc answered with labels (commit 746d090): the
    same class (cloudpickle keeps it by reference), a signature of one probability column per target, no
    metadata, no params."""
    import mlflow
    from mlflow.models import infer_signature

    from dagster_autotag.train.ensemble import load_model_dir
    from dagster_autotag.train.pyfunc import SchemeModelPyfunc
    from dagster_autotag.train.registry import runtime_requirements

    example = pd.DataFrame({"text": list(texts[:3])})
    model = load_model_dir(model_dir)
    output = pd.DataFrame(model.predict_proba(example["text"].tolist()), columns=model.targets)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=SchemeModelPyfunc(), artifacts={"model": str(model_dir)},
            signature=infer_signature(example, output), input_example=example, registered_model_name=NAME,
            pip_requirements=runtime_requirements(),
        )  # fmt: skip
    return str(info.registered_model_version)


def set_champion(version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(NAME, CHAMPION, version)
