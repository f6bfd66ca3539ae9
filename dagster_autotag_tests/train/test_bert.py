"""The BERT path on a tiny randomly initialised BertConfig model built on the fly."""

import numpy as np
import pytest

from dagster_autotag.train.bert import BertTrainConfig, TrainedBert, micro_f1, pos_weight, train_bert
from dagster_autotag.train.bert_bf16 import Bf16Bert, bf16_supported
from dagster_autotag.train.bert_onnx import OnnxBert
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir

KEYWORDS = ["谍照", "上市", "报价"]
FILLER = "这款新车的外观内饰动力配置都值得关注一下吧"


def synthetic(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random((n, len(KEYWORDS))) < 0.35
    texts = []
    for row in y:
        words = [FILLER[i] for i in rng.integers(0, len(FILLER), size=12)]
        for j in np.flatnonzero(row):
            words.insert(int(rng.integers(0, len(words))), KEYWORDS[j])
        texts.append("".join(words))
    return texts, y.astype(np.float32)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train_x, train_y = synthetic(160, 0)
    dev_x, dev_y = synthetic(60, 1)
    model_dir = tiny_bert_dir(tmp_path_factory.mktemp("tiny_bert"), train_x + dev_x, hidden=64, layers=1)
    # a randomly initialised encoder needs a far higher learning rate than fine-tuning does
    config = BertTrainConfig(
        model_dir=str(model_dir), max_len=32, batch_size=16, lr=3e-3, head_lr=1e-2, max_epochs=8, patience=8,
        dropout=0.0,
    )  # fmt: skip
    epochs = []
    model = train_bert(train_x, train_y, dev_x, dev_y, config, on_epoch=lambda e, m: epochs.append((e, m)))
    return model, dev_x, dev_y, epochs


def test_tiny_bert_learns_a_multi_label_task(trained):
    model, dev_x, dev_y, epochs = trained
    probs = model.predict_proba(dev_x)
    assert probs.shape == dev_y.shape and probs.dtype == np.float32
    assert micro_f1(dev_y, probs) >= 0.85
    assert [e for e, _ in epochs] == list(range(1, len(epochs) + 1))
    assert {"train_loss", "dev_micro_f1"} <= set(epochs[0][1])
    assert max(m["dev_micro_f1"] for _, m in epochs) == pytest.approx(micro_f1(dev_y, probs), abs=1e-6)  # best kept


def test_save_and_load_give_the_same_probabilities(trained, tmp_path):
    model, dev_x, _, _ = trained
    model.save(tmp_path / "bert")
    loaded = TrainedBert.load(tmp_path / "bert")
    np.testing.assert_allclose(loaded.predict_proba(dev_x), model.predict_proba(dev_x), atol=1e-5)


def test_dynamic_padding_does_not_change_results(trained):
    model, dev_x, _, _ = trained
    one_by_one = np.vstack([model.predict_proba([t]) for t in dev_x[:8]])
    np.testing.assert_allclose(one_by_one, model.predict_proba(dev_x[:8], batch_size=8), atol=1e-5)


def test_pos_weight_is_capped_and_safe_for_labels_without_positives():
    y = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 0, 0]] * 10, dtype=np.float32)
    y[0, 2] = 1
    weights = pos_weight(y, cap=3.0).tolist()
    assert weights[0] == 3.0 and weights[1] == 1.0 and weights[2] == pytest.approx(29 / 11)  # 11 positives of 40


def test_asset_config_falls_back_to_the_environment_model_dir(tmp_path, monkeypatch):
    from dagster_autotag.train.assets import BERT_DIR_ENV, BertRunConfig

    monkeypatch.setenv(BERT_DIR_ENV, str(tmp_path))
    assert BertRunConfig().to_dataclass().model_dir == str(tmp_path)
    monkeypatch.setenv(BERT_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="missing"):
        BertRunConfig().to_dataclass()


@pytest.mark.parametrize(("inference", "tolerance"), [("onnx", 1e-4), ("onnx_int8", 0.05)])
def test_onnx_runtime_inference_matches_pytorch(trained, tmp_path, inference, tolerance):
    """Saved with inference=onnx/onnx_int8, the model loads onto ONNX Runtime and gives PyTorch's
    probabilities (int8: within quantisation error) and the same decisions at 0.5 on most items."""
    from dataclasses import replace

    model, dev_x, _, _ = trained
    exported = TrainedBert(model.model, model.tokenizer, replace(model.config, inference=inference), model.history)
    exported.save(tmp_path / "bert")
    loaded = TrainedBert.load(tmp_path / "bert", device="cpu")
    assert isinstance(loaded.engine, OnnxBert)
    expected, got = model.predict_proba(dev_x), loaded.predict_proba(dev_x)
    assert np.abs(got - expected).max() <= tolerance
    assert ((got >= 0.5) == (expected >= 0.5)).mean() >= 0.95
    import onnx

    # eager attention at export is what lets ORT's optimizer fuse it (the speed-up at max_len 128);
    # residual LayerNorm stays unfused (ORT's SkipLayerNormalization is the slower kernel on CPU)
    ops = {node.op_type for node in onnx.load(tmp_path / "bert" / "model.onnx").graph.node}
    assert {"Attention", "BiasGelu", "LayerNormalization"} <= ops and "SkipLayerNormalization" not in ops
    assert model.model.encoder.config._attn_implementation == model.config.attn_implementation  # restored


def test_onnx_runtime_serves_an_exclusive_head_as_a_softmax(trained, tmp_path):
    """An exclusive scheme's head saved with inference=onnx: ONNX Runtime gives the same softmax."""
    from dataclasses import replace

    model, dev_x, _, _ = trained
    softmax = TrainedBert(model.model, model.tokenizer, replace(model.config, inference="onnx"), exclusive=True)
    softmax.save(tmp_path / "bert")
    loaded = TrainedBert.load(tmp_path / "bert", device="cpu")
    assert isinstance(loaded.engine, OnnxBert) and loaded.exclusive
    expected, got = softmax.predict_proba(dev_x), loaded.predict_proba(dev_x)
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no native bf16 (AVX-512 BF16 / AMX)")
@pytest.mark.parametrize("exclusive", [False, True])
def test_bf16_inference_matches_pytorch_fp32(trained, tmp_path, exclusive):
    """Saved with inference=torch_bf16, the model loads onto the bf16 engine (no ONNX files): fp32's
    probabilities within bf16 rounding, the same decisions at 0.5 on most items, its weights kept fp32."""
    from dataclasses import replace

    import torch

    model, dev_x, _, _ = trained
    fp32 = TrainedBert(model.model, model.tokenizer, replace(model.config, inference="torch_bf16"), exclusive=exclusive)
    fp32.save(tmp_path / "bert")
    assert not list((tmp_path / "bert").glob("*.onnx"))
    loaded = TrainedBert.load(tmp_path / "bert", device="cpu")
    assert isinstance(loaded.engine, Bf16Bert) and loaded.engine.dtype == torch.bfloat16
    # every linear layer through oneDNN's fused primitives, the FFN's GELU and both residual adds inside
    # theirs (the tiny model has 1 layer)
    assert loaded.engine.fused == {"residual": 2, "gelu": 1}
    assert not any(isinstance(m, torch.nn.Linear) for m in loaded.engine.model.modules())
    assert next(loaded.model.parameters()).dtype == torch.float32  # what save() writes stays fp32
    expected, got = fp32.predict_proba(dev_x), loaded.predict_proba(dev_x)
    assert 0 < np.abs(got - expected).max() <= 0.02  # bf16 really ran (fp32 would give exactly 0)
    assert ((got >= 0.5) == (expected >= 0.5)).mean() >= 0.95
    if exclusive:
        assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_bf16_engine_serves_fp32_without_bf16_hardware(trained, monkeypatch, caplog):
    import torch

    from dagster_autotag.train import bert_bf16

    model, dev_x, _, _ = trained
    monkeypatch.setattr(bert_bf16, "bf16_supported", lambda: False)
    engine = bert_bf16.Bf16Bert(model.model)
    assert engine.dtype == torch.float32 and engine.fused == {} and "serves in fp32" in caplog.text
    served = TrainedBert(model.model, model.tokenizer, model.config)
    served.engine = engine
    np.testing.assert_allclose(served.predict_proba(dev_x), model.predict_proba(dev_x), atol=1e-5)
