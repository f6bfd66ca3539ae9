"""Exclusive schemes (issue #14 §3): every kind's sub-label model is a softmax, the argmax under the
gate decides, each label still ships by its precision bound. Tiny keyword data, one topic per item."""

import json

import numpy as np
import polars as pl
import pytest

from dagster_autotag.corpus.exclusivity import exclusivity_report
from dagster_autotag.corpus.splits import label_mask
from dagster_autotag.train.configs import BertTrainConfig, KNNConfig, LinearConfig, TextCNNConfig, TrainingOptions
from dagster_autotag.train.ensemble import build_ensemble, load_model_dir
from dagster_autotag.train.linear import LinearModel
from dagster_autotag.train.scheme_model import argmax_scores, train_scheme_model
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir

GATE = "主题"
TOPICS = {"主题/体育": "比赛进球", "主题/财经": "股市上涨", "主题/科技": "芯片发布"}
LABELS = [*TOPICS, "主题/娱乐"]  # 娱乐: never in the data, so never shippable
FILLER = "今天记者报道消息表示目前相关方面已经开始进行"


def rows(n: int, seed: int) -> pl.DataFrame:
    """Half the items are topic news (one topic each, its cue, sometimes a second topic's cue as noise)."""
    rng = np.random.default_rng(seed)
    texts, gates, labels = [], [], []
    names = list(TOPICS)
    for _ in range(n):
        words = [FILLER[i : i + 2] for i in rng.integers(0, len(FILLER) - 1, size=5)]
        gate = bool(rng.random() < 0.5)
        mine = []
        if gate:
            mine = [names[int(rng.integers(0, len(names)))]]
            words.insert(int(rng.integers(0, len(words))), TOPICS[mine[0]])
            if rng.random() < 0.1:  # a distractor: another topic's cue, weaker than the item's own
                words.append(TOPICS[names[int(rng.integers(0, len(names)))]][:2])
        else:
            words.insert(0, "天气")
        texts.append("".join(words))
        gates.append(gate)
        labels.append(mine)
    return pl.DataFrame(
        {"itemid": [f"{seed}-{i}" for i in range(n)], "text": texts, "gate": gates, "labels": labels, "copy": [0] * n},
        schema_overrides={"labels": pl.List(pl.String)},
    )


def item_mask_counts(rows: pl.DataFrame) -> pl.DataFrame:
    """The split plan's mask counts: distinct items per label combination (copies counted once)."""
    return rows.unique("itemid").group_by("mask").len("items")


def write_dataset(path, exclusive: bool = True):
    path.mkdir(parents=True)
    for split, n, seed in (("train", 400, 0), ("dev", 150, 1), ("test", 150, 2)):
        rows(n, seed).write_parquet(path / f"{split}.parquet")
    train = pl.read_parquet(path / "train.parquet").with_columns(label_mask("gate", "labels", LABELS))
    report = exclusivity_report(item_mask_counts(train), exclusive)
    manifest = {"scheme": "topics", "gate": [GATE], "labels": LABELS, "exclusive": report}
    (path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("exclusive") / "topics")


@pytest.fixture(scope="module")
def linear(dataset):
    return train_scheme_model("linear", LinearConfig(min_df=1), dataset)


@pytest.fixture(scope="module")
def textcnn(dataset):
    config = TextCNNConfig(embed_dim=16, num_filters=16, max_epochs=6, max_len=24, num_threads=1, lr=1e-2, min_freq=1)
    return train_scheme_model("textcnn", config, dataset, TrainingOptions(threshold_folds=0))


def assert_exclusive(result):
    model, probs = result.model, result.test.probs
    # a softmax under the gate: the sub-labels share the gate probability among them
    assert np.allclose(probs[:, 1:].sum(axis=1), probs[:, 0], atol=1e-4)
    fired = model.decide(probs)
    assert (fired[:, 1:].sum(axis=1) <= 1).all()  # never two topics
    assert (fired[:, 1:].any(axis=1) <= fired[:, 0]).all()  # never without the gate


def test_the_manifest_report_counts_items_with_several_sub_labels():
    frame = pl.DataFrame(
        {"itemid": ["a", "a", "b", "c", "d"], "gate": [True, True, True, True, False], "mask": [3, 3, 7, 1, 0]}
    )  # a: one label (twice: a copy), b: two, c: none, d: gate negative
    report = exclusivity_report(item_mask_counts(frame), declared=True)
    assert report["gate_positives"] == 3 and report["several_labels"] == 1 and report["no_label"] == 1
    assert report["several_labels_share"] == pytest.approx(1 / 3) and report["data_agrees"] is False
    without_b = item_mask_counts(frame.filter(pl.col("itemid") != "b"))
    assert exclusivity_report(without_b, declared=False)["data_agrees"] is True


def test_linear_learns_a_softmax_and_predicts_one_topic(linear, dataset, tmp_path):
    assert linear.model.exclusive and linear.model.label_model.softmax
    assert_exclusive(linear)
    assert linear.test.summary["micro_f1"] >= 0.9, linear.test.summary
    shipped = linear.model.shipped_targets()
    assert set(TOPICS) <= set(shipped) and "主题/娱乐" not in shipped  # per label, by the bound
    assert linear.model.thresholds.source.startswith("oof(")  # out of fold, like a multi-label scheme
    loaded = load_model_dir(linear.model.save(tmp_path / "m"))
    texts = rows(30, 5)["text"].to_list()
    assert loaded.exclusive and np.allclose(loaded.predict_proba(texts), linear.model.predict_proba(texts))


def test_a_softmax_without_a_label_in_train_never_chooses_it():
    y = np.zeros((6, 3), dtype=np.float32)
    y[[0, 1, 2], 0] = 1
    y[[3, 4, 5], 2] = 1
    y[5, 0] = 1  # two labels: counted once each, half weight
    model = LinearModel(LinearConfig(min_df=1)).fit(["a甲", "a乙", "a丙", "b丁", "b戊", "ab己"], y, exclusive=True)
    probs = model.predict_proba(["a甲", "b丁", "c"])
    assert np.allclose(probs.sum(axis=1), 1) and (probs[:, 1] < 1e-6).all()
    assert probs[0].argmax() == 0 and probs[1].argmax() == 2


def test_argmax_scores_keep_only_the_best_sub_label_and_its_confidence():
    probs = np.array([[0.9, 0.5, 0.3, 0.1], [0.8, 0.3, 0.26, 0.24], [0.1, 0.0, 0.1, 0.0]], dtype=np.float32)
    scores = argmax_scores(probs)
    assert np.allclose(scores, [[0.9, 0.5, 0, 0], [0.8, 0.3, 0, 0], [0.1, 0, 0.1, 0]])
    # softmax probability of the argmax: 0.5/0.9 = 0.56, 0.3/0.8 = 0.375, 1.0
    assert np.allclose(argmax_scores(probs, 0.5)[:, 1:], [[0.5, 0, 0], [0, 0, 0], [0, 0.1, 0]])


def test_min_argmax_confidence_drops_unsure_items(dataset):
    options = TrainingOptions(min_argmax_confidence=0.99, threshold_folds=0)
    sure = train_scheme_model("linear", LinearConfig(min_df=1), dataset, options)
    assert sure.model.min_confidence == 0.99
    fired_sure = sure.model.decide(sure.test.probs)[:, 1:].sum()
    plain = train_scheme_model("linear", LinearConfig(min_df=1), dataset, TrainingOptions(threshold_folds=0))
    assert fired_sure < plain.model.decide(plain.test.probs)[:, 1:].sum()


def test_textcnn_is_a_softmax_too_and_ensembles_keep_one_topic(linear, textcnn, dataset, tmp_path):
    assert textcnn.model.exclusive and textcnn.model.label_model.exclusive
    assert_exclusive(textcnn)
    assert textcnn.test.summary["micro_f1"] >= 0.8, textcnn.test.summary
    for method in ("mean", "agreement"):
        result = build_ensemble([linear.model, textcnn.model], method, dataset)
        fired = result.model.decide(result.test.probs, texts=rows(150, 2)["text"].to_list())
        assert (fired[:, 1:].sum(axis=1) <= 1).all(), method
        assert result.test.summary["micro_f1"] >= 0.8, (method, result.test.summary)
        loaded = load_model_dir(result.model.save(tmp_path / method))
        assert loaded.exclusive and loaded.method == method


def test_knn_and_bert_learn_the_softmax_head(dataset, tmp_path):
    encoder = tiny_bert_dir(tmp_path / "enc", rows(400, 0)["text"].to_list(), hidden=32, layers=1)
    options = TrainingOptions(threshold_folds=0)
    knn = train_scheme_model("knn", KNNConfig(str(encoder), k=10, batch_size=128, num_threads=1), dataset, options)
    assert knn.model.label_model.exclusive
    assert_exclusive(knn)
    config = BertTrainConfig(
        model_dir=str(encoder), max_len=24, batch_size=32, lr=3e-3, head_lr=1e-2, max_epochs=1, patience=1,
        dropout=0.0,
    )  # fmt: skip
    bert = train_scheme_model("bert", config, dataset, options)
    assert bert.model.label_model.exclusive
    assert_exclusive(bert)
    loaded = load_model_dir(bert.model.save(tmp_path / "bert"))
    texts = rows(20, 7)["text"].to_list()
    assert np.allclose(loaded.predict_proba(texts), bert.model.predict_proba(texts), atol=1e-5)


def test_an_ensemble_does_not_mix_softmax_and_sigmoid_members(linear, dataset, tmp_path):
    from dagster_autotag.train.ensemble import EnsembleModel

    flat_dir = write_dataset(tmp_path / "flat", exclusive=False)
    flat = train_scheme_model("linear", LinearConfig(min_df=1), flat_dir, TrainingOptions(threshold_folds=0))
    assert not flat.model.exclusive and not flat.model.label_model.softmax
    with pytest.raises(ValueError, match="all be exclusive"):
        EnsembleModel([linear.model, flat.model])
