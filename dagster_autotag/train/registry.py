"""MLflow side of training: tracking URI, a pyfunc that returns shipped labels and scores for raw text,
registration with the `challenger` alias, and the promotion gate to `champion`.

mlflow is imported inside functions: importing it costs 1–2 s, which the CLI and the code
location should not pay. Registry stages are deprecated; only aliases are used.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagster_autotag.settings import autotag_home
from dagster_autotag.train.store import open_store, registry_lock

TRACKING_URI_ENV = "AUTOTAG_MLFLOW_TRACKING_URI"
CHALLENGER, CHAMPION = "challenger", "champion"


def configured_tracking_uri() -> str:
    """$AUTOTAG_MLFLOW_TRACKING_URI (a real server), else sqlite under $AUTOTAG_HOME/mlflow; nothing is
    created (for readers that must not make a store, e.g. retention)."""
    uri = os.environ.get(TRACKING_URI_ENV, "").strip()
    return uri or f"sqlite:///{autotag_home() / 'mlflow' / 'mlflow.db'}"


def default_tracking_uri() -> str:
    """configured_tracking_uri(), ready for concurrent use (train/store.py: a sqlite store is created and
    migrated once, under a file lock)."""
    uri = configured_tracking_uri()
    if os.environ.get(TRACKING_URI_ENV, "").strip():
        return uri
    (autotag_home() / "mlflow").mkdir(parents=True, exist_ok=True)
    return open_store(uri)


def default_artifact_root() -> str:
    return (autotag_home() / "mlflow" / "artifacts").as_uri()


def registered_model_name(scheme: str, kind: str) -> str:
    """One registered model per scheme and model type (it holds the gate and sub-label models)."""
    return f"autotag.{scheme}.{kind}"


@dataclass
class LoggedModel:
    run_id: str
    name: str
    version: str
    model_uri: str


def log_scheme_model(model_dir: Path, name: str, example_texts: list[str]) -> LoggedModel:
    """Inside an active run: log the saved SchemeModel (or EnsembleModel) at `model_dir` as a pyfunc
    (signature and input example), register it under `name`, point `challenger` at the new version."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from dagster_autotag.predict.batch import score_and_decide
    from dagster_autotag.train.ensemble import load_model_dir
    from dagster_autotag.train.pyfunc import LABELS_OUTPUT, OUTPUT_PARAM, SchemeModelPyfunc, labels_frame

    example = pd.DataFrame({"text": list(example_texts[:3]) or ["示例文本"]})
    model = load_model_dir(model_dir)
    output = labels_frame(model, *score_and_decide(model, example["text"].tolist()))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=SchemeModelPyfunc(),
        artifacts={"model": str(model_dir)},
        signature=infer_signature(example, output, params={OUTPUT_PARAM: LABELS_OUTPUT}),
        input_example=example,
        registered_model_name=name,
        pip_requirements=runtime_requirements(),  # inferring them starts a subprocess (~20 s)
        metadata={"targets": list(model.targets)},  # every target, shipped or not (champion_targets)
    )
    version = str(info.registered_model_version)
    set_challenger(name, version)
    return LoggedModel(mlflow.active_run().info.run_id, name, version, f"models:/{name}/{version}")


def set_challenger(name: str, version: str) -> None:
    """`challenger` → `version`, unless a newer version already holds it: two trainings registering
    at once leave it on the newest, as one after the other would."""
    import mlflow

    client = mlflow.MlflowClient()
    with registry_lock(mlflow.get_tracking_uri(), name):
        try:
            current = int(client.get_model_version_by_alias(name, CHALLENGER).version)
        except mlflow.exceptions.MlflowException:
            current = None
        if current is None or current < int(version):
            client.set_registered_model_alias(name, CHALLENGER, version)


def runtime_requirements() -> list[str]:
    """What a scheme model needs to load elsewhere, pinned to the versions that trained it."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "numpy", "pandas", "polars", "scikit-learn", "torch", "transformers", "jieba"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pass
    return pins


def load_scheme_model(model_uri: str):
    """A registered model back as our SchemeModel / EnsembleModel
    (e.g. `models:/autotag.p0_newcar.linear@champion`)."""
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model


def champion_targets(name: str) -> tuple[str | None, list[str] | None]:
    """(version, targets) of the current champion of `name`, from its logged metadata (`targets`), or for
    versions logged before that, their signature (then one output column per target); (None, None)
    without one. Read before promotion moves the alias."""
    import mlflow

    client = mlflow.MlflowClient()
    try:
        version = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None, None
    info = mlflow.models.get_model_info(f"models:/{name}/{version}")
    if info.metadata and info.metadata.get("targets"):
        return version, list(info.metadata["targets"])
    signature = info.signature
    return version, (signature.outputs.input_names() if signature is not None and signature.outputs else None)


@dataclass
class Promotion:
    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None
    challenger_score: float
    champion_score: float | None


def promote(name: str, score: Callable[[str], float], tolerance: float = 0.0, version: str | None = None) -> Promotion:
    """Move `champion` to `version` (default: the `challenger` version) when score(it) ≥
    score(champion) − tolerance; `score(model_uri)` evaluates a model on the current test split, so
    both are judged on the same data even when the champion was trained on an older window. Held
    under the registered model's lock (train/store.py): a run promoting at the same moment compares
    with the champion this one leaves, never with the one both read before."""
    import mlflow

    with registry_lock(mlflow.get_tracking_uri(), name):
        return _promote(mlflow.MlflowClient(), name, score, tolerance, version)


def _promote(client, name: str, score: Callable[[str], float], tolerance: float, version: str | None) -> Promotion:
    import mlflow

    new_version = version or str(client.get_model_version_by_alias(name, CHALLENGER).version)
    try:
        old_version = str(client.get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        old_version = None
    new = score(f"models:/{name}/{new_version}")
    if old_version is None:
        client.set_registered_model_alias(name, CHAMPION, new_version)
        return Promotion(True, "no champion yet", new_version, None, new, None)
    if old_version == new_version:
        return Promotion(False, "challenger is already the champion", new_version, old_version, new, new)
    old = score(f"models:/{name}/{old_version}")
    if new >= old - tolerance:
        client.set_registered_model_alias(name, CHAMPION, new_version)
        reason = f"challenger v{new_version} {new:.4f} ≥ champion v{old_version} {old:.4f} − tolerance {tolerance}"
        return Promotion(True, reason, new_version, old_version, new, old)
    reason = f"kept champion v{old_version}: challenger v{new_version} {new:.4f} < {old:.4f} − tolerance {tolerance}"
    return Promotion(False, reason, new_version, old_version, new, old)
