"""Pure modules stay pure: importing one, in a fresh interpreter, does not import Dagster.

Every module of the package is pure except the Dagster wiring listed in DAGSTER_WIRING. A pure
module may import Dagster lazily inside a function (demo.py, cli.py do), never at import time.
"""

import fnmatch
import json
import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dagster_autotag

# The Dagster wiring: the only modules that may import dagster when loaded. Patterns (fnmatch, `*`
# also matches dots) so that renaming or adding an asset or job module needs no edit here.
DAGSTER_WIRING = (
    "dagster_autotag.definitions",  # the code location
    "dagster_autotag.resources",  # every Dagster resource
    "dagster_autotag.partitions",  # the daily partitions definition
    "dagster_autotag.metadata",  # asset metadata values and check results
    "dagster_autotag.pools",  # the instance's pool limits, checked at step start
    "dagster_autotag.run_config",  # Dagster run config derived from the option dataclasses
    "dagster_autotag.*.assets",  # each layer's asset definitions ...
    "dagster_autotag.*_assets",  # ... also when named <something>_assets
    "dagster_autotag.jobs",  # job definitions
    "dagster_autotag.*.jobs",
    "dagster_autotag.clean.table_steps",  # raw + clean of one table in one Dagster step …
    "dagster_autotag.*_step",  # … built from each half's spec, checks and body (raw_step, clean_step)
    "dagster_autotag.automation",  # schedules, sensors, executor
    "dagster_autotag.automation.*",
)

# Named in issue #13 as having imported Dagster through ingest/source.py; they must stay covered.
KNOWN_PURE = {
    "dagster_autotag.settings",
    "dagster_autotag.ingest.source",
    "dagster_autotag.ingest.landing",
    "dagster_autotag.ingest.hive_client",
    "dagster_autotag.ingest.typecast",
    "dagster_autotag.ingest.tsv_export",
    "dagster_autotag.ingest.raw",
    "dagster_autotag.clean.video",
    "dagster_autotag.clean.tags",
    "dagster_autotag.corpus.taxonomy",
    "dagster_autotag.corpus.items",
    "dagster_autotag.cli",
    "dagster_autotag.demo",
    "dagster_autotag.alerts.webhook",
    "dagster_autotag.alerts.freshness",
    "dagster_autotag.retention.options",
    "dagster_autotag.retention.lake_files",
    "dagster_autotag.retention.mlflow_artifacts",
    "dagster_autotag.retention.run",
    "dagster_autotag.serve.app",  # issue #17: the service's logic lives outside the Dagster wiring
    "dagster_autotag.serve.models",
    "dagster_autotag.predict.model_changes",
    "dagster_autotag.predict.rollback",
    # the review loop (issue #17): choosing items, Label Studio's HTTP API, corrections
    "dagster_autotag.review.selection",
    "dagster_autotag.review.tasks",
    "dagster_autotag.review.corrections",
    "dagster_autotag.review.label_studio",
    "dagster_autotag.train.store",  # the MLflow store's locks: a torchrun rank or a service opens it too
}

# Imports the modules named in argv one after another; at the first that leaves `dagster` in
# sys.modules, prints it and the chain of modules that were being executed when dagster was
# imported (outermost first), and exits 1.
CHILD = """
import importlib, json, sys

chain = []

class DagsterSpy:
    def find_spec(self, name, path=None, target=None):
        if name == "dagster" and not chain:
            frame = sys._getframe(1)
            while frame is not None:
                if frame.f_code.co_name == "<module>":
                    chain.append(frame.f_globals.get("__name__", "?"))
                frame = frame.f_back
            chain.reverse()
        return None

sys.meta_path.insert(0, DagsterSpy())
for module in sys.argv[1:]:
    importlib.import_module(module)
    if "dagster" in sys.modules:
        print(json.dumps({"module": module, "chain": [m for m in chain if m != "__main__"] + ["dagster"]}))
        sys.exit(1)
"""


def all_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages(dagster_autotag.__path__, "dagster_autotag."))


def is_wiring(module: str) -> bool:
    return any(fnmatch.fnmatchcase(module, pattern) for pattern in DAGSTER_WIRING)


def pure_modules() -> list[str]:
    return [m for m in all_modules() if not is_wiring(m)]


def import_fresh(modules: list[str], home: Path) -> dict | None:
    """Import `modules` in one new interpreter; None when dagster stayed out, else the culprit."""
    root = str(Path(dagster_autotag.__file__).resolve().parent.parent)  # this checkout, not an installed copy
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        "AUTOTAG_HOME": str(home),
    }
    out = subprocess.run([sys.executable, "-c", CHILD, *modules], capture_output=True, text=True, env=env, cwd=root)
    if out.returncode == 0:
        return None
    lines = out.stdout.strip().splitlines()
    if out.returncode == 1 and lines and lines[-1].startswith("{"):
        return json.loads(lines[-1])
    raise AssertionError(f"importing {modules} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")


def test_wiring_list_matches_what_it_should():
    modules = all_modules()
    wiring = [m for m in modules if is_wiring(m)]
    for expected in (
        "dagster_autotag.definitions",
        "dagster_autotag.resources",
        "dagster_autotag.clean.raw_step",
        "dagster_autotag.clean.clean_step",
        "dagster_autotag.clean.table_steps",
        "dagster_autotag.automation.sensors",
    ):
        assert expected in wiring
    assert KNOWN_PURE <= set(pure_modules())


def test_pure_modules_do_not_import_dagster(tmp_path: Path):
    modules = pure_modules()
    # One fresh interpreter importing every pure module catches any of them importing dagster
    # (imports only accumulate) at the cost of one import of everything (~10 s, most of it the
    # training stack) instead of one interpreter start and import per module (~60 s on 2 cores).
    culprit = import_fresh(modules, tmp_path)
    if culprit is None:
        return
    # Something imports dagster: find every module that does, each in an interpreter of its own.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        found = [r for r in pool.map(lambda m: import_fresh([m], tmp_path), modules) if r is not None]
    report = "\n".join(f"  {r['module']}: {' -> '.join(r['chain'])}" for r in found or [culprit])
    raise AssertionError(f"pure modules import dagster when loaded (import chain, outermost first):\n{report}")
