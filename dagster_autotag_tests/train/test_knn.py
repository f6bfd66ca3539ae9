"""The knn kind: the vote itself on hand-made vectors, then a scheme model on a tiny encoder
through save/load and an MLflow pyfunc round trip."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from dagster_autotag.train.configs import KNNConfig
from dagster_autotag.train.knn import KNNModel, vote
from dagster_autotag.train.registry import load_scheme_model, log_scheme_model, registered_model_name
from dagster_autotag.train.scheme_model import SchemeModel, SplitData, train_scheme_model
from dagster_autotag_tests.train.test_scheme_model import GATE, LABELS, dataset, rows  # noqa: F401 - fixture
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir


def unit(rows_: list[list[float]]) -> np.ndarray:
    v = np.asarray(rows_, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_the_vote_weights_nearer_neighbours_more():
    stored = unit([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]])
    targets = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    probs = vote(unit([[1, 0.05], [0.05, 1]]), stored, targets, k=4, temperature=0.05)
    assert probs[0, 0] > 0.99 and probs[1, 1] > 0.99  # all four vote; the near pair dominates
    assert np.allclose(probs.sum(axis=1), 1.0)
    flat = vote(unit([[1, 0.05]]), stored, targets, k=4, temperature=100.0)
    assert flat[0, 0] == pytest.approx(0.5, abs=0.01)  # a high temperature is a plain majority of k
    only_nearest = vote(unit([[0.2, 1]]), stored, targets, k=1, temperature=0.05)
    assert only_nearest.tolist() == [[0.0, 1.0]]


def test_k_above_the_stored_rows_uses_them_all():
    stored = unit([[1, 0], [0, 1]])
    probs = vote(unit([[1, 0]]), stored, np.array([[1], [0]], dtype=bool), k=20, temperature=1.0)
    assert 0.5 < probs[0, 0] < 1.0


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    texts = rows(600, 0)["text"].to_list() + ["新车谍照曝光", "机油保养技巧"]
    return tiny_bert_dir(tmp_path_factory.mktemp("encoder"), texts)


@pytest.fixture(scope="module")
def knn(dataset, encoder_dir):  # noqa: F811 - the imported fixture
    return train_scheme_model("knn", KNNConfig(str(encoder_dir), k=10, batch_size=128, num_threads=1), dataset)


def test_knn_goes_through_the_scheme_model_path(knn):
    assert knn.model.kind == "knn"
    assert list(knn.test.per_label["label"]) == [GATE, *LABELS]
    probs = knn.test.probs
    assert ((probs >= 0) & (probs <= 1)).all() and (probs[:, 1:] <= probs[:, :1] + 1e-6).all()


def test_save_load_keeps_probabilities_and_saves_the_encoder_once(knn, dataset, tmp_path):  # noqa: F811
    path = knn.model.save(tmp_path / "m")
    assert (path / "gate" / "encoder").is_dir() and not (path / "labels" / "encoder").exists()
    assert json.loads((path / "labels" / "knn.json").read_text())["encoder"] == "../gate/encoder"
    test = SplitData.read(dataset / "test.parquet", LABELS)
    loaded = SchemeModel.load(path)
    np.testing.assert_allclose(loaded.predict_proba(test.texts), knn.model.predict_proba(test.texts), atol=1e-5)


def test_knn_round_trips_through_the_mlflow_registry(knn, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOTAG_HOME", str(tmp_path))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.create_experiment("test", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment("test")
    name = registered_model_name("p0_test", "knn")
    texts = ["新车谍照曝光", "机油保养技巧"]
    with mlflow.start_run():
        logged = log_scheme_model(knn.model.save(tmp_path / "m"), name, texts)
    pyfunc = mlflow.pyfunc.load_model(logged.model_uri)
    out = pyfunc.predict(pd.DataFrame({"text": texts}), params={"output": "probabilities"})
    assert list(out.columns) == [GATE, *LABELS]
    np.testing.assert_allclose(out.to_numpy(), knn.model.predict_proba(texts), atol=1e-5)
    assert isinstance(load_scheme_model(logged.model_uri).label_model, KNNModel)


def test_the_run_config_falls_back_to_the_environment_encoder_dir(tmp_path, monkeypatch):
    from dagster_autotag.train.assets import ENCODER_DIR_ENV, KNNRunConfig

    monkeypatch.setenv(ENCODER_DIR_ENV, str(tmp_path))
    assert KNNRunConfig(k=5).to_dataclass() == KNNConfig(str(tmp_path), k=5)
    monkeypatch.delenv(ENCODER_DIR_ENV)
    with pytest.raises(ValueError, match="knn needs a local transformers directory"):
        KNNRunConfig().to_dataclass()


@pytest.mark.parametrize("bad", [{"k": 0}, {"temperature": 0.0}, {"max_len": 0}, {"batch_size": -1}])
def test_knn_options_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="must be positive"):
        KNNConfig("encoder", **bad)
