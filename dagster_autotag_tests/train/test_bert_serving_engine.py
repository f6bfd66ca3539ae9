"""A BERT scheme served by ONNX Runtime int8 or PyTorch bf16 is tuned and scored on that engine's probabilities."""

import json

import numpy as np
import polars as pl
import pytest

from dagster_autotag.train.bert_bf16 import bf16_supported
from dagster_autotag.train.configs import BertTrainConfig, TrainingOptions
from dagster_autotag.train.scheme_model import SchemeModel, train_scheme_model
from dagster_autotag_tests.train.test_distributed_bert import TRAIN, write_dataset
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir

ENGINES = [
    "onnx_int8",
    pytest.param("torch_bf16", marks=pytest.mark.skipif(not bf16_supported(), reason="no native bf16 on this CPU")),
]


@pytest.mark.parametrize("inference", ENGINES)
def test_thresholds_and_test_score_come_from_the_serving_engine(tmp_path, inference):
    dataset_dir = tmp_path / "datasets" / "p0_newcar"
    texts = write_dataset(dataset_dir)
    model_dir = tiny_bert_dir(tmp_path / "tiny_bert", texts, hidden=32, layers=1, dropout=0.0)
    config = BertTrainConfig(model_dir=str(model_dir), **{**TRAIN, "inference": inference})
    result = train_scheme_model("bert", config, dataset_dir, TrainingOptions(threshold_folds=0))
    model = result.model
    assert model.gate_model.engine is not None and model.label_model.engine is not None

    dev = pl.read_parquet(dataset_dir / "dev.parquet")["text"].to_list()
    model.save(tmp_path / "saved")
    served = SchemeModel.load(tmp_path / "saved").predict_proba(dev, skip_gate_negative=False)
    assert np.abs(model.tuning.probs - served).max() <= 1e-5  # tuned on what serves

    for part in (model.gate_model, model.label_model):
        part.engine = None  # PyTorch fp32's probabilities differ: the check above can fail
    assert np.abs(model.predict_proba(dev, skip_gate_negative=False) - served).max() > 1e-4
    manifest = json.loads((dataset_dir / "manifest.json").read_text(encoding="utf-8"))
    assert model.tuning.probs.shape == (len(dev), 1 + len(manifest["labels"]))
