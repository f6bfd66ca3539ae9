import json
import random
from dataclasses import asdict

import numpy as np
import pytest

from dagster_autotag.train.linear import LinearConfig, LinearModel
from dagster_autotag.train.targets import label_matrix

LABELS = ["新车资讯/谍照", "新车资讯/新车上市", "导购/报价", "用车/保养"]  # 保养 never appears in train
KEYWORDS = {"新车资讯/谍照": "谍照", "新车资讯/新车上市": "上市", "导购/报价": "报价"}
FILLER = "这款车型的外观设计动力表现内饰空间油耗配置都值得关注车主评分口碑不错"


def synthetic(n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Random filler text; each label present (independently, p=.35) inserts its keyword."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        chars = [rng.choice(FILLER) for _ in range(rng.randint(12, 30))]
        present = [label for label in KEYWORDS if rng.random() < 0.35]
        for label in present:
            chars.insert(rng.randrange(len(chars) + 1), KEYWORDS[label])
        texts.append("".join(chars))
        labels.append(present)
    return texts, labels


@pytest.fixture(scope="module")
def fitted() -> tuple[LinearModel, list[str], np.ndarray]:
    texts, labels = synthetic(300, seed=1)
    model = LinearModel(LinearConfig(max_features=5000, C=10.0)).fit(texts, label_matrix(labels, LABELS))
    test_texts, test_labels = synthetic(150, seed=2)
    return model, test_texts, label_matrix(test_labels, LABELS)


def test_learns_keyword_labels(fitted):
    model, texts, y = fitted
    probs = model.predict_proba(texts)
    assert probs.shape == (len(texts), len(LABELS)) and probs.dtype == np.float32
    pred = probs[:, :3] >= 0.5
    gold = y[:, :3] > 0
    tp = (pred & gold).sum()
    micro_f1 = 2 * tp / (pred.sum() + gold.sum())
    assert micro_f1 >= 0.95


def test_label_without_positives_is_a_constant_zero(fitted):
    model, texts, _ = fitted
    probs = model.predict_proba(texts)
    assert (probs[:, 3] == 0.0).all()


def test_label_with_only_positives_is_a_constant_one():
    texts, _ = synthetic(40, seed=3)
    y = np.zeros((40, 2), dtype=np.float32)
    y[:, 0] = 1.0
    y[::2, 1] = 1.0
    probs = LinearModel(LinearConfig(max_features=2000)).fit(texts, y).predict_proba(texts[:5])
    assert (probs[:, 0] == 1.0).all()
    assert ((probs[:, 1] > 0) & (probs[:, 1] < 1)).all()


def test_probabilities_match_sklearn_predict_proba(fitted):
    model, texts, _ = fitted
    # refit one label directly: the stored weights must reproduce LogisticRegression.predict_proba
    from sklearn.linear_model import LogisticRegression

    train_texts, train_labels = synthetic(300, seed=1)
    x = model.vectorizer.transform(train_texts)
    y = label_matrix(train_labels, LABELS)[:, 0]
    cfg = model.config
    clf = LogisticRegression(C=cfg.C, class_weight=cfg.class_weight, solver="liblinear", dual=True, max_iter=1000)
    clf.fit(x, y)
    expected = clf.predict_proba(model.vectorizer.transform(texts))[:, 1]
    np.testing.assert_allclose(model.predict_proba(texts)[:, 0], expected, rtol=1e-4, atol=1e-6)


def test_save_load_roundtrip(fitted, tmp_path):
    model, texts, _ = fitted
    path = model.save(tmp_path / "sub" / "linear.joblib")
    loaded = LinearModel.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    assert loaded.config == model.config
    assert LinearConfig(**json.loads(json.dumps(asdict(model.config)))) == model.config


def test_config_options_reach_the_estimators():
    texts, labels = synthetic(80, seed=4)
    y = label_matrix(labels, LABELS[:3])
    cfg = LinearConfig(analyzer="char", ngram_range=(1, 2), min_df=1, max_features=50, class_weight="balanced", C=0.5)
    model = LinearModel(cfg).fit(texts, y)
    assert model.vectorizer.ngram_range == (1, 2) and len(model.vectorizer.vocabulary_) == 50
    assert model.predict_proba(texts).shape == (80, 3)


def test_unfitted_and_mismatched_inputs_fail_clearly():
    with pytest.raises(RuntimeError):
        LinearModel().predict_proba(["谍照"])
    with pytest.raises(ValueError):
        LinearModel().fit(["a b", "a c"], np.zeros((3, 1)))
