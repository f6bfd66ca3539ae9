"""Which registered model predicts a scheme: the `champion` alias of the first model kind that has one.

No Dagster; mlflow is imported inside functions (1–2 s), like train/registry.py.
"""

from dataclasses import dataclass

from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name

# Best first: an ensemble of champions, then single models; "linear" always trains fastest.
KIND_FALLBACK = ("ensemble", "bert", "textcnn", "linear")


class NoChampionError(LookupError):
    pass


@dataclass
class Champion:
    scheme: str
    kind: str
    name: str
    version: str
    run_id: str
    model: object  # SchemeModel or EnsembleModel

    def describe(self) -> str:
        return f"{self.name} v{self.version} (run {self.run_id})"


def kind_chain(kind: str, explicit: bool = False) -> list[str]:
    """The kinds to try: just `kind` when a run asked for it, else `kind` and the simpler ones after it."""
    if explicit or kind not in KIND_FALLBACK:
        return [kind]
    return list(KIND_FALLBACK[KIND_FALLBACK.index(kind) :])


def how_to_train(scheme: str) -> str:
    return (
        f"train one: materialize datasets/{scheme} (job build_datasets), then models/{scheme}/linear "
        f"(job train_models), e.g. `dagster asset materialize -m dagster_autotag.definitions "
        f"--select datasets/{scheme},models/{scheme}/linear`; the first version trained becomes champion"
    )


def find_champion(client, scheme: str, kinds: list[str]) -> tuple[str, str, str, str]:
    """(kind, registered name, version, run id) of the first kind whose model has a champion."""
    from mlflow.exceptions import MlflowException

    for kind in kinds:
        name = registered_model_name(scheme, kind)
        try:
            version = client.get_model_version_by_alias(name, CHAMPION)
        except MlflowException:  # no such registered model, or no champion alias on it
            continue
        return kind, name, str(version.version), version.run_id
    tried = ", ".join(f"{registered_model_name(scheme, k)}@{CHAMPION}" for k in kinds)
    raise NoChampionError(f"no champion model for scheme {scheme!r} (tried {tried}); {how_to_train(scheme)}")


def load_champion(tracking_uri: str, scheme: str, kinds: list[str]) -> Champion:
    """Loads the resolved version (models:/name/version), not the alias, so the model that
    predicts is the one named in the metadata even if promotion moves the alias meanwhile."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    kind, name, version, run_id = find_champion(mlflow.MlflowClient(tracking_uri), scheme, kinds)
    model = load_scheme_model(f"models:/{name}/{version}")
    return Champion(scheme, kind, name, version, run_id, model)
