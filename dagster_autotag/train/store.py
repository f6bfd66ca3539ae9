"""The MLflow store, safe for every process that opens it at once, whatever the Dagster instance
says: Dagster steps, a torchrun rank, a service, the CLI.

- `open_store(uri)`: a sqlite store is created and migrated by one process at a time (MLflow's
  own stores run alembic on first open without a lock: two processes opening a new file at once
  fail with "Online migration expected to match one row"). Later opens in the process are free.
- `registry_lock(uri, name)`: held around a read-compare-write of the registry (moving an alias,
  the serving record's tags, creating the experiment), so two runs never interleave them.

Locks are `filelock` files (flock on Linux: released when the holder dies, so a killed run never
leaves one stuck), beside a sqlite store, else under $AUTOTAG_HOME/locks (they then guard the
processes sharing that home, not other machines talking to the same tracking server).
No Dagster; mlflow is imported inside the functions, like train/registry.py.
"""

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from dagster_autotag.settings import autotag_home

LOCK_TIMEOUT_S = 3600.0  # a promotion scores two models under its lock: BERT on CPU takes minutes
_ready: set[str] = set()  # stores this process has opened under the lock
_ready_guard = threading.Lock()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///…` URI (None for anything else, in-memory sqlite included)."""
    path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


def lock_dir(uri: str) -> Path:
    path = sqlite_path(uri)
    if path is not None:
        return path.parent / "locks"
    return autotag_home() / "locks" / f"mlflow-{hashlib.blake2b(uri.encode(), digest_size=6).hexdigest()}"


def lock_file(folder: Path, name: str) -> Path:
    """A lock file for `name` (any string) in `folder`: readable, and distinct for distinct names."""
    safe = re.sub(r"[^\w.-]", "_", name)[:80]
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{safe}.{digest}.lock"


def open_store(uri: str) -> str:
    """`uri`, once its store is ready for concurrent use: a sqlite file is created (tables, alembic
    migrations, the Default experiment) by one process at a time, under a lock beside it. Any other
    URI (a tracking server, which migrates itself) is returned as it is. Call it before the first
    mlflow call on a URI; it costs nothing after the first time in a process."""
    path = sqlite_path(uri)
    if path is None or uri in _ready:
        return uri
    path.parent.mkdir(parents=True, exist_ok=True)
    with _ready_guard, FileLock(lock_file(lock_dir(uri), "init-" + path.name), timeout=LOCK_TIMEOUT_S):
        if uri not in _ready:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments(max_results=1)  # the tracking store: creates and migrates the tables
            client.search_registered_models(max_results=1)  # the registry store over the same file
            _ready.add(uri)
    return uri


@contextmanager
def registry_lock(uri: str, name: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive, across processes, for a read-compare-write of registry entry `name` in store `uri`.
    Never nest two holds of one name in a process: the second would wait for the first."""
    with FileLock(lock_file(lock_dir(uri), name), timeout=timeout_s):
        yield


def ensure_experiment(uri: str, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment `name`, created on first use: two runs starting at once on a fresh store
    would otherwise both create it, and one would fail (RESOURCE_ALREADY_EXISTS)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=open_store(uri))
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    with registry_lock(uri, f"experiment-{name}"):
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(name, artifact_location=artifact_location)
