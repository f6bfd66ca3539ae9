"""Which registered model predicts a scheme: the `champion` alias of the first model kind that has one.

No Dagster; mlflow is imported inside functions (1–2 s), like train/registry.py.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name

# Best first: an ensemble of champions, then single models; "linear" always trains fastest.
KIND_FALLBACK = ("ensemble", "bert", "textcnn", "linear")


class NoChampionError(LookupError):
    pass


class MissingChampionsError(NoChampionError):
    """Schemes without a champion (one message each), when they may not be skipped."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


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


def load_champions(
    tracking_uri: str,
    names: Sequence[str],
    default_kind: str,
    schemes: Sequence[str] = (),
    model_kinds: Mapping[str, str] | None = None,
    skip_missing: bool = False,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[list[Champion], list[str]]:
    """(champions, messages of the schemes skipped) for `schemes` (empty: all `names`). A scheme in
    `model_kinds` uses that kind only; the others `default_kind` and the simpler ones after it.
    Raises MissingChampionsError when a scheme has none, unless `skip_missing` and another has one."""
    model_kinds = model_kinds or {}
    unknown = sorted(set(schemes) - set(names))
    if unknown:
        raise ValueError(f"run config names schemes {unknown} this code location does not predict; have {names}")
    champions, missing = [], []
    for scheme in schemes or names:
        explicit = scheme in model_kinds
        kinds = kind_chain(model_kinds.get(scheme, default_kind), explicit)
        try:
            champions.append(load_champion(tracking_uri, scheme, kinds))
        except NoChampionError as exc:
            missing.append(str(exc))
            continue
        log(f"{scheme}: predicting with {champions[-1].describe()}")
    if missing and (not skip_missing or not champions):
        raise MissingChampionsError(missing)
    return champions, missing
