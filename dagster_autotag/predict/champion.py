"""Which registered model predicts a scheme. Every kind's champion (alias `champion` of
autotag.<scheme>.<kind>) is a candidate; predict/serving.py chooses among them by measurement, and the
decision is kept on the versionless registered model autotag.<scheme> (tags `serving.*`), decided again
when any kind's champion moves. A run config may pin a kind or a version instead.

The record is a dozen tags written one by one: reading it, deciding and writing it happen under
the lock of autotag.<scheme> (train/store.py), so seven partitions predicted at once decide once
and never read a record half-written by another run.

No Dagster; mlflow is imported inside functions (1–2 s), like train/registry.py.
"""

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from dagster_autotag.corpus.dataset import MANIFEST
from dagster_autotag.predict.model_changes import lake_of_dataset, model_changes_path, record_change
from dagster_autotag.predict.serving import (
    Candidate,
    ServingError,
    ServingRecord,
    choose_serving,
    inference_device,
    measure_speed,
    parse_pin,
    within_budget,
)
from dagster_autotag.train.configs import TrainingOptions
from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name
from dagster_autotag.train.store import open_store, registry_lock

DEFAULT_METRIC = TrainingOptions().promotion_metric
Log = Callable[[str], None]
logger = logging.getLogger(__name__)


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
    masked: tuple[str, ...] = ()  # targets retired from the taxonomy since training: not shipped today

    def describe(self) -> str:
        return f"{self.name} v{self.version} (run {self.run_id})"

    def profile_id(self) -> str:
        """What its label profile depends on: the version, and the targets masked in this run."""
        return self.describe() + (f" masked {sorted(self.masked)}" if self.masked else "")


@dataclass
class Serving:
    """The model that predicts a scheme, loaded, with the decision that chose it and where that came from."""

    champion: Champion
    record: ServingRecord
    source: str  # "registry …", "decided now …" or "pinned by run config"


def serving_model_name(scheme: str) -> str:
    """The versionless registered model whose `serving.*` tags say which model serves the scheme."""
    return f"autotag.{scheme}"


def how_to_train(scheme: str) -> str:
    return (
        f"train one: materialize datasets/{scheme} (job build_datasets), then models/{scheme}/linear "
        f"(job train_models), e.g. `dagster asset materialize -m dagster_autotag.definitions "
        f"--select datasets/{scheme},models/{scheme}/linear`; the first version trained becomes champion"
    )


def no_champion_message(scheme: str) -> str:
    return (
        f"no champion model for scheme {scheme!r} (no {registered_model_name(scheme, '<kind>')} has a "
        f"{CHAMPION} alias); {how_to_train(scheme)}"
    )


def find_champion(client, scheme: str, kinds: list[str]) -> tuple[str, str, str, str]:
    """(kind, registered name, version, run id) of the first of `kinds` whose model has a champion."""
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


def current_champions(client, scheme: str) -> dict[str, tuple[str, str, str]]:
    """kind → (registered name, version, run id) of every autotag.<scheme>.<kind> with a champion."""
    prefix = registered_model_name(scheme, "")
    found = {}
    # LIKE treats `_` as a wildcard (p0_newcar): keep exact prefixes only
    for model in client.search_registered_models(filter_string=f"name LIKE '{prefix}%'"):
        if not model.name.startswith(prefix) or CHAMPION not in model.aliases:
            continue
        version = str(model.aliases[CHAMPION])
        found[model.name[len(prefix) :]] = (model.name, version, client.get_model_version(model.name, version).run_id)
    return dict(sorted(found.items()))


def read_serving_record(client, scheme: str) -> ServingRecord | None:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(serving_model_name(scheme))
    except MlflowException:
        return None
    return ServingRecord.from_tags(scheme, model.tags)


def write_serving_record(
    client, record: ServingRecord, source: str = "serving decision", audit_log: Path | None = None
) -> None:
    """Creates autotag.<scheme> (no versions) on first use, then sets its `serving.*` tags. A decision
    that changes the serving model goes to the audit log (predict/model_changes.py)."""
    from mlflow.exceptions import MlflowException

    previous = read_serving_record(client, record.scheme)
    name = serving_model_name(record.scheme)
    try:
        client.get_registered_model(name)
    except MlflowException:
        description = (
            f"Which model serves {record.scheme}'s daily predictions (tags serving.*): every kind's champion "
            "scored on the current test split, the best within the scheme's inference budget. No versions."
        )
        try:
            client.create_registered_model(name, description=description)
        except MlflowException:  # another run created it meanwhile
            client.get_registered_model(name)
    for key, value in record.to_tags().items():
        client.set_registered_model_tag(name, key, value)
    if previous is None or (previous.name, previous.version) != (record.name, record.version):
        record_change(
            record.scheme, "serving", record.name, record.version, record.reason, source,
            None if previous is None else previous.describe(), audit_log,
        )  # fmt: skip


def read_test_split(scheme: str, dataset_dir: Path):
    """(SplitData of the test split, a description of it) — the split every champion is scored on."""
    from dagster_autotag.train.scheme_model import SplitData

    if not (dataset_dir / MANIFEST).exists() or not (dataset_dir / "test.parquet").exists():
        raise ServingError(
            f"cannot compare the champions of {scheme}: no dataset at {dataset_dir} "
            f"(materialize datasets/{scheme}, job build_datasets)"
        )
    manifest = json.loads((dataset_dir / MANIFEST).read_text(encoding="utf-8"))
    test = SplitData.read(dataset_dir / "test.parquet", manifest["labels"])
    window = manifest.get("window", {})
    return test, f"{dataset_dir}/test.parquet ({len(test.texts)} rows, {window.get('start')}..{window.get('end')})"


def measure_champions(
    client,
    champions: Mapping[str, tuple[str, str, str]],
    test,
    metric: str,
    budget_s_per_100k: float | None,
    log: Log = logger.info,
) -> tuple[list[Candidate], dict[str, object]]:
    """Each champion's cost (measured here, as the daily run predicts) and, when within the budget, its
    `metric` on `test` with its own thresholds. Over-budget kinds are not scored (BERT on CPU would take
    minutes); their row keeps the score their training run logged. A model that fails to load or score
    stays in the table with the error, and is not chosen."""
    from dagster_autotag.train.scheme_model import score_on_split

    candidates, models = [], {}
    for kind, (name, version, run_id) in champions.items():
        recorded = client.get_run(run_id).data.metrics.get(f"test.{metric}") if run_id else None
        candidate = Candidate(kind, name, version, run_id, recorded_score=recorded)
        try:
            model = load_scheme_model(f"models:/{name}/{version}")
            speed = measure_speed(model, test.texts)
            candidate = replace(candidate, seconds_per_100k=speed.seconds_per_100k if speed else None)
            if within_budget(candidate, budget_s_per_100k):
                candidate = replace(candidate, score=score_on_split(model, test, metric))
                models[kind] = model
            else:
                candidate = replace(candidate, note="over budget: not scored")
        except Exception as exc:  # noqa: BLE001 - reported in the decision's table, never chosen
            candidate = replace(candidate, note=f"could not be scored: {type(exc).__name__}: {exc}"[:300])
        cost = "speed unknown" if candidate.seconds_per_100k is None else f"{candidate.seconds_per_100k:,.1f} s"
        score = "not scored" if candidate.score is None else f"{metric} {candidate.score:.4f}"
        log(
            f"{kind} {name} v{version}: {score}, {cost} per 100k items{'; ' + candidate.note if candidate.note else ''}"
        )
        candidates.append(candidate)
    return candidates, models


def decide_serving(
    tracking_uri: str,
    scheme: str,
    dataset_dir: Path,
    budget_s_per_100k: float | None,
    metric: str = DEFAULT_METRIC,
    log: Log = logger.info,
) -> Serving:
    """Scores every kind's champion on the scheme's current test split and chooses (not written: see
    write_serving_record). Raises NoChampionError without any champion, ServingError when none may serve."""
    import mlflow

    mlflow.set_tracking_uri(open_store(tracking_uri))
    client = mlflow.MlflowClient(tracking_uri)
    champions = current_champions(client, scheme)
    if not champions:
        raise NoChampionError(no_champion_message(scheme))
    test, dataset = read_test_split(scheme, dataset_dir)
    candidates, models = measure_champions(client, champions, test, metric, budget_s_per_100k, log)
    decision = choose_serving(scheme, candidates, metric, budget_s_per_100k)
    versions = {kind: version for kind, (_, version, _) in champions.items()}
    record = ServingRecord.of(decision, versions, inference_device(), _now(), dataset)
    c = decision.chosen
    return Serving(Champion(scheme, c.kind, c.name, c.version, c.run_id, models[c.kind]), record, "decided now")


def decide_and_record(
    tracking_uri: str,
    scheme: str,
    dataset_dir: Path,
    budget_s_per_100k: float | None,
    metric: str = DEFAULT_METRIC,
    log: Log = logger.info,
    source: str = "serving decision",
) -> Serving:
    """decide_serving, then write_serving_record (a change goes to the lake's audit log), under the
    scheme's serving lock."""
    with registry_lock(open_store(tracking_uri), serving_model_name(scheme)):
        return _decide(tracking_uri, scheme, dataset_dir, budget_s_per_100k, metric, log, source, write=True)


def _decide(tracking_uri, scheme, dataset_dir, budget_s_per_100k, metric, log, source, write: bool) -> Serving:
    """decide_serving and, when `write`, its record; the caller holds the serving lock (not re-entrant)."""
    import mlflow

    serving = decide_serving(tracking_uri, scheme, dataset_dir, budget_s_per_100k, metric, log)
    if write:
        audit_log = model_changes_path(lake_of_dataset(dataset_dir))
        write_serving_record(mlflow.MlflowClient(tracking_uri), serving.record, source, audit_log)
    return serving


def resolve_serving(
    tracking_uri: str,
    scheme: str,
    dataset_dir: Path,
    budget_s_per_100k: float | None,
    pin: str | None = None,
    write: bool = True,
    log: Log = logger.info,
    source: str = "serving decision",
) -> Serving:
    """The model that predicts `scheme`: the pinned one; else the registry's decision while it holds;
    else decided now (scoring every champion on the dataset's test split) and, when `write`, recorded."""
    import mlflow

    mlflow.set_tracking_uri(open_store(tracking_uri))
    client = mlflow.MlflowClient(tracking_uri)
    if pin is not None:
        serving = pinned_serving(client, scheme, pin, budget_s_per_100k)
        record = read_serving_record(client, scheme)
        c = serving.champion
        record_change(
            scheme, "pin", c.name, c.version, f"pinned to {pin}: {serving.record.reason}", source,
            None if record is None else record.describe(), model_changes_path(lake_of_dataset(dataset_dir)),
        )  # fmt: skip
        return serving
    with registry_lock(tracking_uri, serving_model_name(scheme)):
        record, stale = recorded_serving(client, scheme, budget_s_per_100k)
        if stale is not None:
            log(f"{scheme}: deciding which model serves ({stale})")
            metric = record.metric if record is not None else DEFAULT_METRIC
            serving = _decide(tracking_uri, scheme, dataset_dir, budget_s_per_100k, metric, log, source, write)
            serving.source = f"decided now ({stale})" + ("" if write else "; not recorded: this run's budget overrides")
            return serving
    model = load_scheme_model(f"models:/{record.name}/{record.version}")  # a version: fixed once read
    champion = Champion(scheme, record.kind, record.name, record.version, record.run_id, model)
    return Serving(champion, record, f"registry ({serving_model_name(scheme)}, decided {record.decided_at})")


def recorded_serving(client, scheme: str, budget_s_per_100k: float | None) -> tuple[ServingRecord | None, str | None]:
    """(the registry's decision, why it no longer holds or None). Raises NoChampionError without champions."""
    record = read_serving_record(client, scheme)
    champions = current_champions(client, scheme)
    if not champions:
        raise NoChampionError(no_champion_message(scheme))
    if record is None:
        return None, "no decision recorded"
    versions = {kind: version for kind, (_, version, _) in champions.items()}
    return record, record.stale_because(versions, inference_device(), budget_s_per_100k)


def pinned_serving(client, scheme: str, pin: str, budget_s_per_100k: float | None) -> Serving:
    """A kind's champion ("linear") or an exact version ("linear:3"), as the run config pins it."""
    from mlflow.exceptions import MlflowException

    kind, version = parse_pin(pin)
    if version is None:
        kind, name, version, run_id = find_champion(client, scheme, [kind])
    else:
        name = registered_model_name(scheme, kind)
        try:
            run_id = client.get_model_version(name, version).run_id
        except MlflowException as exc:
            raise ServingError(f"{scheme}: the pin {pin!r} names no registered version ({name} v{version})") from exc
    decision = choose_serving(scheme, [Candidate(kind, name, version, run_id)], DEFAULT_METRIC, budget_s_per_100k, pin)
    record = ServingRecord.of(decision, {}, inference_device(), _now())
    champion = Champion(scheme, kind, name, version, run_id, load_scheme_model(f"models:/{name}/{version}"))
    return Serving(champion, record, "pinned by run config")


def load_champion(tracking_uri: str, scheme: str, kinds: list[str]) -> Champion:
    """The champion of the first of `kinds` that has one. Loads the resolved version (models:/name/version),
    not the alias, so the model that predicts is the one named even if promotion moves the alias meanwhile."""
    import mlflow

    mlflow.set_tracking_uri(open_store(tracking_uri))
    kind, name, version, run_id = find_champion(mlflow.MlflowClient(tracking_uri), scheme, kinds)
    return Champion(scheme, kind, name, version, run_id, load_scheme_model(f"models:/{name}/{version}"))


def load_servings(
    tracking_uri: str,
    budgets: Mapping[str, float | None],
    datasets_dir: Path,
    schemes: Sequence[str] = (),
    pins: Mapping[str, str] | None = None,
    budget_overrides: Mapping[str, float | None] | None = None,
    skip_missing: bool = False,
    log: Log = logger.info,
    source: str = "serving decision",
) -> tuple[list[Serving], list[str]]:
    """(servings, messages of the schemes skipped) for `schemes` (empty: every scheme of `budgets`, which
    maps each scheme to its inference budget). `pins`: scheme → "kind" or "kind:version" (each pinned run
    is written to the audit log as a `pin`; `source` says who ran it). A run's budget
    override decides for that run only (not recorded). Raises MissingChampionsError when a scheme has
    no champion, unless `skip_missing` and another has one."""
    pins, budget_overrides = pins or {}, budget_overrides or {}
    names = list(budgets)
    unknown = sorted((set(schemes) | set(pins) | set(budget_overrides)) - set(names))
    if unknown:
        raise ValueError(f"run config names schemes {unknown} this code location does not predict; have {names}")
    servings, missing = [], []
    for scheme in schemes or names:
        overridden = scheme in budget_overrides
        budget = budget_overrides[scheme] if overridden else budgets[scheme]
        try:
            serving = resolve_serving(
                tracking_uri, scheme, datasets_dir / scheme, budget, pins.get(scheme), not overridden, log, source
            )
        except NoChampionError as exc:
            missing.append(str(exc))
            continue
        servings.append(serving)
        log(f"{scheme}: predicting with {serving.champion.describe()} — {serving.source}: {serving.record.reason}")
    if missing and (not skip_missing or not servings):
        raise MissingChampionsError(missing)
    return servings, missing


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
