"""train/store.py: a fresh sqlite MLflow store opened by several processes at once, and the registry's
read-compare-writes (challenger, promotion) that take turns."""

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from dagster_autotag.settings import REPO_ROOT
from dagster_autotag.train.registry import CHALLENGER, CHAMPION, promote, set_challenger
from dagster_autotag.train.store import ensure_experiment, lock_dir, open_store, sqlite_path

PROCESSES = 3
# Each child imports mlflow first (seconds), says so, then waits for the start line: the store is
# opened by all of them within milliseconds, as steps of one run do.
CHILD = """
import sys, time
from pathlib import Path
import mlflow
from dagster_autotag.train.store import ensure_experiment, open_store
uri, go, ready = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.005)
experiment = ensure_experiment(open_store(uri), "autotag")
run = mlflow.MlflowClient(uri).create_run(experiment)
print(experiment, run.info.run_id)
"""


def test_a_fresh_store_opened_by_several_processes_at_once(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{k}" for k in range(PROCESSES)]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, uri, str(go), str(r)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in ready
    ]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in ready):
        assert time.monotonic() < deadline and all(c.poll() is None for c in children), "a child did not start"
        time.sleep(0.05)
    go.touch()
    outputs = [c.communicate(timeout=120) for c in children]
    assert [c.returncode for c in children] == [0] * PROCESSES, [err[-2000:] for _, err in outputs]
    experiments = {out.split()[0] for out, _ in outputs}
    assert len(experiments) == 1  # created once, found by the others
    client = mlflow.MlflowClient(uri)
    assert len(client.search_runs(list(experiments))) == PROCESSES


def test_lock_files_live_beside_a_sqlite_store_and_under_the_home_otherwise(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTAG_HOME", str(tmp_path / "home"))
    assert sqlite_path(f"sqlite:///{tmp_path}/m/mlflow.db") == tmp_path / "m" / "mlflow.db"
    assert sqlite_path("sqlite://") is None and sqlite_path("http://127.0.0.1:5000") is None
    assert lock_dir(f"sqlite:///{tmp_path}/m/mlflow.db") == tmp_path / "m" / "locks"
    assert lock_dir("http://127.0.0.1:5000").parent == tmp_path / "home" / "locks"
    assert open_store("http://127.0.0.1:5000") == "http://127.0.0.1:5000"  # a server migrates itself


@pytest.fixture
def registered(tmp_path: Path):
    """A store with autotag.s.linear v1 and v2 (v2 is challenger, v1 champion)."""
    uri = open_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    name = "autotag.s.linear"
    client.create_registered_model(name)
    experiment = ensure_experiment(uri, "autotag")
    for _ in range(2):
        run = client.create_run(experiment)
        client.create_model_version(name, f"{tmp_path}/artifacts", run.info.run_id)
    client.set_registered_model_alias(name, CHALLENGER, "2")
    client.set_registered_model_alias(name, CHAMPION, "1")
    yield client, name
    mlflow.set_tracking_uri("")


def test_the_challenger_stays_on_the_newest_version(registered):
    client, name = registered
    set_challenger(name, "1")  # a slower training of an older version registers last
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "2"


def test_promotion_judges_the_version_it_is_given_not_whatever_is_challenger(registered):
    client, name = registered
    scores = {f"models:/{name}/1": 0.5, f"models:/{name}/2": 0.9}
    decision = promote(name, scores.__getitem__, version="1")
    assert (decision.challenger_version, decision.promoted) == ("1", False)
    assert decision.reason == "challenger is already the champion"
    decision = promote(name, scores.__getitem__, version="2")
    assert decision.promoted and decision.challenger_score == 0.9 and decision.champion_score == 0.5
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "2"
