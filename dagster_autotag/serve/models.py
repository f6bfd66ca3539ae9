"""Which model serves each scheme, loaded; and a background thread that follows the registry.

The service resolves a scheme exactly as predictions/daily_labels does (predict/champion.py): a pin, else
the registry's `serving.*` decision on autotag.<scheme> while it holds, else decided again now (every
champion scored on the scheme's test split) and recorded. Models are loaded as models:/<name>/<version>,
never from a file path. A new version is loaded off the request path, then swapped in by replacing one
dict reference, so a batch that started keeps the model it started with and none waits or fails.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dagster_autotag.predict.champion import (
    NoChampionError,
    current_champions,
    find_champion,
    no_champion_message,
    read_serving_record,
    resolve_serving,
    serving_model_name,
)
from dagster_autotag.predict.model_changes import lake_of_dataset, model_changes_path, record_change
from dagster_autotag.predict.serving import ServingError, inference_device, parse_pin
from dagster_autotag.serve.settings import ServeSettings
from dagster_autotag.train.registry import load_scheme_model, registered_model_name

logger = logging.getLogger(__name__)
SOURCE = "autotag serve"


@dataclass(frozen=True)
class Target:
    """The registered version that should serve a scheme, and why."""

    scheme: str
    kind: str
    name: str
    version: str
    run_id: str
    source: str  # "registry (…)", "decided now (…)", "pinned (…)"

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.version


@dataclass(frozen=True)
class LoadedModel:
    target: Target
    model: object  # SchemeModel or EnsembleModel
    shipped: tuple[str, ...]
    loaded_at: str

    def describe(self) -> dict:
        t = self.target
        return {
            "scheme": t.scheme, "kind": t.kind, "name": t.name, "version": t.version, "run_id": t.run_id,
            "source": t.source, "shipped": list(self.shipped), "targets": list(self.model.targets),
            "loaded_at": self.loaded_at,
        }  # fmt: skip


def resolve_target(client, settings: ServeSettings, scheme: str) -> tuple[Target, object | None]:
    """(target, the model when resolving had to load it anyway, else None). Raises NoChampionError or
    ServingError with the message that says what to do."""
    pin = settings.pins.get(scheme)
    if pin is not None:
        kind, version = parse_pin(pin)
        if version is None:
            kind, name, version, run_id = find_champion(client, scheme, [kind])
        else:
            name = registered_model_name(scheme, kind)
            run_id = _run_id(client, name, version, pin, scheme)
        return Target(scheme, kind, name, version, run_id, f"pinned by --pin {scheme}={pin}"), None
    record = read_serving_record(client, scheme)
    champions = current_champions(client, scheme)
    if not champions:
        raise NoChampionError(no_champion_message(scheme))
    versions = {kind: version for kind, (_, version, _) in champions.items()}
    budget = settings.budgets.get(scheme)
    stale = "no decision recorded" if record is None else record.stale_because(versions, inference_device(), budget)
    if stale is None:
        source = f"registry ({serving_model_name(scheme)}, decided {record.decided_at})"
        return Target(scheme, record.kind, record.name, record.version, record.run_id, source), None
    dataset_dir = Path(settings.datasets_dir) / scheme
    serving = resolve_serving(settings.tracking_uri, scheme, dataset_dir, budget, log=logger.info, source=SOURCE)
    c = serving.champion
    return Target(scheme, c.kind, c.name, c.version, c.run_id, serving.source), c.model


def _run_id(client, name: str, version: str, pin: str, scheme: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version).run_id
    except MlflowException as exc:
        raise ServingError(f"{scheme}: the pin {pin!r} names no registered version ({name} v{version})") from exc


def load_target(target: Target, model: object | None = None) -> LoadedModel:
    model = model if model is not None else load_scheme_model(f"models:/{target.name}/{target.version}")
    loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
    return LoadedModel(target, model, tuple(model.shipped_targets()), loaded_at)


class ModelStore:
    """scheme → LoadedModel. Readers take `current()` once per batch; a swap replaces the whole dict."""

    def __init__(self, schemes: tuple[str, ...]) -> None:
        self.schemes = schemes
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()  # writers only

    def current(self) -> dict[str, LoadedModel]:
        return self._models

    def errors(self) -> dict[str, str]:
        return dict(self._errors)

    def missing(self) -> list[str]:
        return [s for s in self.schemes if s not in self._models]

    def swap(self, loaded: LoadedModel) -> LoadedModel | None:
        with self._lock:
            previous = self._models.get(loaded.target.scheme)
            self._models = {**self._models, loaded.target.scheme: loaded}
            self._errors.pop(loaded.target.scheme, None)
        return previous

    def fail(self, scheme: str, message: str) -> None:
        with self._lock:
            self._errors = {**self._errors, scheme: message}


class Reloader:
    """Resolves every scheme now and then every `poll_s` seconds, on its own thread; loads a version that
    moved and swaps it in. A failure keeps the model being served (and is reported by /healthz while
    nothing is loaded for that scheme)."""

    def __init__(
        self,
        settings: ServeSettings,
        store: ModelStore,
        on_swap: Callable[[LoadedModel, LoadedModel | None], None] | None = None,
        on_error: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings, self.store = settings, store
        self.on_swap, self.on_error = on_swap, on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="autotag-serve-reloader", daemon=True)
        self._pin_logged: set[str] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.settings.poll_s)

    def poll_once(self) -> None:
        import mlflow

        mlflow.set_tracking_uri(self.settings.tracking_uri)  # models:/ URIs load through the global registry
        client = mlflow.MlflowClient(self.settings.tracking_uri)
        for scheme in self.settings.schemes:
            if self._stop.is_set():
                return
            try:
                self._follow(client, scheme)
            except Exception as exc:  # noqa: BLE001 - a registry hiccup must not stop serving
                message = f"{type(exc).__name__}: {exc}"
                logger.warning("%s: could not resolve or load the serving model: %s", scheme, message)
                self.store.fail(scheme, message)
                if self.on_error is not None:
                    self.on_error(scheme, message)

    def _follow(self, client, scheme: str) -> None:
        current = self.store.current().get(scheme)
        target, model = resolve_target(client, self.settings, scheme)
        if current is not None and current.target.key == target.key:
            return
        started = time.perf_counter()
        loaded = load_target(target, model)
        previous = self.store.swap(loaded)
        logger.info(
            "%s: serving %s v%s (%s; loaded in %.1f s)%s", scheme, target.name, target.version, target.source,
            time.perf_counter() - started, f", was v{previous.target.version}" if previous else "",
        )  # fmt: skip
        if scheme in self.settings.pins and scheme not in self._pin_logged:
            self._pin_logged.add(scheme)
            record_change(
                scheme, "pin", target.name, target.version, f"service pinned to {self.settings.pins[scheme]}",
                SOURCE, None if previous is None else f"{previous.target.name} v{previous.target.version}",
                model_changes_path(lake_of_dataset(Path(self.settings.datasets_dir) / scheme)),
            )  # fmt: skip
        if self.on_swap is not None:
            self.on_swap(loaded, previous)
