"""models/<scheme>/<kind> through Dagster, on the demo's datasets and MLflow store."""

import shutil

import dagster as dg
import mlflow
import pandas as pd
import pytest

from dagster_autotag.definitions import build_definitions
from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource
from dagster_autotag.train.registry import CHALLENGER, CHAMPION
from dagster_autotag_tests.demo_home import tracking_uri
from dagster_autotag_tests.test_definitions import materializations


def test_demo_registered_and_promoted_both_model_types_and_their_ensemble(demo_home):
    assert "models/p0_newcar  ok" in demo_home.stdout
    client = mlflow.MlflowClient(tracking_uri(demo_home.path))
    for kind in ("linear", "textcnn", "ensemble"):
        model = client.get_registered_model(f"autotag.p0_newcar.{kind}")
        assert str(model.aliases[CHAMPION]) == str(model.aliases[CHALLENGER]) == "1"  # first version is champion
        run = client.get_run(client.get_model_version(model.name, model.aliases[CHAMPION]).run_id)
        assert run.data.metrics["test.micro_f1"] > 0.4, (kind, run.data.metrics)
        assert run.data.tags["promotion"] == "promoted"
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
        assert {"evaluation/thresholds.json", "evaluation/metrics.json", "evaluation/pr_curves.png",
                "evaluation/bad_cases.csv", "evaluation/label_map.json"} <= artifacts  # fmt: skip
    textcnn_run = client.get_run(client.get_model_version("autotag.p0_newcar.textcnn", "1").run_id)
    history = client.get_metric_history(textcnn_run.info.run_id, "gate.dev_micro_f1")
    assert [m.step for m in history] == list(range(1, len(history) + 1))  # per-epoch metrics


def test_champion_predicts_raw_text(demo_home):
    mlflow.set_tracking_uri(tracking_uri(demo_home.path))
    model = mlflow.pyfunc.load_model(f"models:/autotag.p0_newcar.linear@{CHAMPION}")
    texts = pd.DataFrame({"text": ["宝马X5谍照曝光,新车将于明年上市", "冬季用车保养技巧"]})
    labelled = model.predict(texts)  # the default output: shipped labels and their scores
    assert list(labelled.columns) == ["labels", "gate", "scores"] and "新车资讯" in labelled.loc[0, "scores"]
    out = model.predict(texts, params={"output": "probabilities"})
    assert out.columns[0] == "新车资讯" and "新车资讯/谍照" in out.columns
    assert ((out.to_numpy() >= 0) & (out.to_numpy() <= 1)).all()
    assert out.iloc[0, 0] > out.iloc[1, 0]  # the spy-shot news is more 新车资讯 than the maintenance tip


@pytest.fixture
def home_copy(demo_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(demo_home.path, home, ignore=shutil.ignore_patterns("landing"))
    return home


def test_a_worse_challenger_is_registered_but_not_promoted(home_copy, monkeypatch):
    monkeypatch.setenv("AUTOTAG_HOME", str(home_copy))
    defs = build_definitions(
        export_source=LandingExportSource(landing_dir=str(home_copy / "landing")),
        lake=LakeResource(home=str(home_copy)),
        # an experiment of the copy's own: the demo's stores artifacts in the shared demo home
        mlflow=MlflowResource(tracking_uri=tracking_uri(home_copy), experiment="home-copy"),
    )
    asset = next(a for a in defs.assets if dg.AssetKey(["models", "p0_newcar", "linear"]) in a.keys)
    # C = 1e-6: weights squeezed to ~0, probabilities near the base rate, nothing reaches the precision floor
    worse = {"c": 1e-6, "class_weight": None, "promotion_tolerance": 0.0}
    config = {"ops": {"models__p0_newcar__linear": {"config": worse}}}
    result = dg.materialize([asset], resources=defs.resources, run_config=config)
    meta = materializations(result)["models/p0_newcar/linear"]
    assert meta["promoted"].value is False and "kept champion v1" in meta["promotion"].value
    assert meta["registered_model"].value == "autotag.p0_newcar.linear v2"
    assert "| 新车资讯 |" in meta["per_label"].value and meta["pr_curves"].value.startswith("![PR curves]")
    client = mlflow.MlflowClient(tracking_uri(home_copy))
    model = client.get_registered_model("autotag.p0_newcar.linear")
    assert {k: str(v) for k, v in model.aliases.items()} == {CHAMPION: "1", CHALLENGER: "2"}
