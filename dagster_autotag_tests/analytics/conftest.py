"""A writable copy of the demo home (lake + MLflow store) for the view tests."""

import shutil
from pathlib import Path

import pytest

from dagster_autotag_tests.demo_home import DemoHome


@pytest.fixture(scope="module")
def home(demo_home: DemoHome, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("analytics") / "home"
    # without the demo's predictions: the tests add their own to see the prediction views appear
    ignore = shutil.ignore_patterns("landing", "dagster", "predictions", "published")
    shutil.copytree(demo_home.path, target, ignore=ignore)
    return target
