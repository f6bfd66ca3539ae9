"""A pinned kind's champion and the message when there is none (no MLflow server; the measured choice:
test_serving.py, and test_prediction_assets.py on a real store)."""

from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException

from dagster_autotag.predict.champion import NoChampionError, find_champion


class FakeRegistry:
    """get_model_version_by_alias for the registered names given, like MlflowClient."""

    def __init__(self, champions: dict[str, int]) -> None:
        self.champions, self.asked = champions, []

    def get_model_version_by_alias(self, name: str, alias: str):
        self.asked.append(name)
        if name not in self.champions:
            raise MlflowException(f"Registered Model with name={name} not found")
        return SimpleNamespace(version=self.champions[name], run_id=f"run-{name}")


def test_find_champion_takes_the_first_kind_with_a_champion():
    registry = FakeRegistry({"autotag.p0_newcar.textcnn": 3, "autotag.p0_newcar.linear": 1})
    found = find_champion(registry, "p0_newcar", ["bert", "textcnn", "linear"])
    assert found == ("textcnn", "autotag.p0_newcar.textcnn", "3", "run-autotag.p0_newcar.textcnn")
    assert registry.asked == ["autotag.p0_newcar.bert", "autotag.p0_newcar.textcnn"]


def test_no_champion_says_how_to_train_one():
    with pytest.raises(NoChampionError) as caught:
        find_champion(FakeRegistry({}), "p1_guide", ["linear"])
    message = str(caught.value)
    assert "no champion model for scheme 'p1_guide' (tried autotag.p1_guide.linear@champion)" in message
    assert (
        "materialize datasets/p1_guide (job build_datasets), then models/p1_guide/linear (job train_models)" in message
    )
