"""Gate + sub-label models of every type through one training/evaluation path, and MLflow
registration with the champion/challenger promotion gate (real sqlite tracking store)."""

import json

import numpy as np
import polars as pl
import pytest

from dagster_autotag.train.configs import TrainingOptions
from dagster_autotag.train.ensemble import EnsembleModel, build_ensemble, load_model_dir
from dagster_autotag.train.linear import LinearConfig
from dagster_autotag.train.registry import (
    CHALLENGER,
    CHAMPION,
    champion_targets,
    load_scheme_model,
    log_scheme_model,
    promote,
    registered_model_name,
)
from dagster_autotag.train.scheme_model import (
    TUNING_FILE,
    SchemeModel,
    SplitData,
    out_of_fold,
    score_on_split,
    train_scheme_model,
    tuning_plan,
)
from dagster_autotag.train.textcnn import TextCNNConfig

GATE = "新车资讯"
LABELS = ["新车资讯/谍照", "新车资讯/新车上市", "新车资讯/新车报价", "新车资讯/新车到店"]
CUES = {"新车资讯/谍照": "谍照曝光", "新车资讯/新车上市": "正式上市", "新车资讯/新车报价": "报价公布"}
FILLER = "用车保养技巧改装轮胎机油空调导航座椅油耗空间"


def rows(n: int, seed: int) -> pl.DataFrame:
    """40% gate items (text says 新车) with keyword sub-labels; 新车到店 never has a cue."""
    rng = np.random.default_rng(seed)
    texts, gates, labels = [], [], []
    for _ in range(n):
        words = [FILLER[i : i + 2] for i in rng.integers(0, len(FILLER) - 1, size=6)]
        gate = bool(rng.random() < 0.4)
        mine = []
        if gate:
            words.insert(0, "新车")
            mine = [lab for lab in CUES if rng.random() < 0.4]
            for lab in mine:
                words.insert(int(rng.integers(0, len(words))), CUES[lab])
            if rng.random() < 0.05:
                mine.append("新车资讯/新车到店")  # uncued, rare: cannot reach the precision floor
        texts.append("".join(words))
        gates.append(gate)
        labels.append(sorted(mine))
    return pl.DataFrame(
        {"itemid": [f"{seed}-{i}" for i in range(n)], "text": texts, "gate": gates, "labels": labels, "copy": [0] * n},
        schema_overrides={"labels": pl.List(pl.String)},
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("datasets") / "p0_test"
    path.mkdir()
    for split, n, seed in (("train", 600, 0), ("dev", 200, 1), ("test", 200, 2)):
        rows(n, seed).write_parquet(path / f"{split}.parquet")
    manifest = {"scheme": "p0_test", "gate": [GATE], "labels": LABELS, "rare_labels": ["新车资讯/新车到店"]}
    (path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def linear(dataset):
    return train_scheme_model("linear", LinearConfig(min_df=1), dataset)


def test_linear_scheme_model_learns_gate_and_labels(linear):
    summary = linear.test.summary
    assert summary["micro_f1"] >= 0.9, summary
    per_label = {r["label"]: r for r in linear.test.per_label.iter_rows(named=True)}
    assert per_label[GATE]["f1"] >= 0.95
    assert per_label["新车资讯/谍照"]["precision"] >= 0.8
    assert linear.rare_labels == ["新车资讯/新车到店"]


def test_a_label_that_cannot_reach_the_precision_floor_is_not_shipped(linear):
    shipped = linear.shipped_labels()
    assert GATE in shipped and "新车资讯/谍照" in shipped
    assert "新车资讯/新车到店" not in shipped
    # and it is never predicted
    assert not linear.test.y_pred[:, linear.model.targets.index("新车资讯/新车到店")].any()
    t = linear.model.thresholds
    assert t.status[linear.model.targets.index("新车资讯/新车到店")] != "shipped"
    assert all(t.lower[j] >= 0.8 for j in np.flatnonzero(t.shipped))  # the promise: the bound, not the point


def test_linear_thresholds_are_tuned_out_of_fold_and_the_model_is_the_same(linear, dataset, tmp_path):
    t = linear.model.thresholds
    assert t.source == "oof(5)+dev" and t.tuning_rows == 600 + 200  # every train item once, plus dev
    assert linear.seconds["oof"] > 0 and linear.seconds["oof_per_fold"] == pytest.approx(linear.seconds["oof"] / 5)
    assert t.support[1] > 2 * linear.dev.per_label["support"][1]  # several times dev's positives
    dev_only = train_scheme_model("linear", LinearConfig(min_df=1), dataset, TrainingOptions(threshold_folds=0))
    assert dev_only.model.thresholds.source == "dev" and dev_only.model.thresholds.tuning_rows == 200
    # the final model is trained once, on train: tuning out of fold changes its thresholds, not its probabilities
    test = SplitData.read(dataset / "test.parquet", LABELS)
    # (liblinear shuffles with numpy's global state, so two fits in one process differ in the 6th digit)
    np.testing.assert_allclose(
        dev_only.model.predict_proba(test.texts), linear.model.predict_proba(test.texts), atol=1e-4
    )
    # the tuning rows travel with the model (an ensemble tunes on them)
    loaded = SchemeModel.load(linear.model.save(tmp_path / "m"))
    assert (tmp_path / "m" / TUNING_FILE).exists() and loaded.tuning.itemids == linear.model.tuning.itemids
    np.testing.assert_array_equal(loaded.tuning.probs, linear.model.tuning.probs)
    assert loaded.thresholds.source == "oof(5)+dev"


def test_out_of_fold_keeps_copies_of_a_text_in_one_fold_and_counts_each_item_once(dataset, monkeypatch):
    from dagster_autotag.train import scheme_model

    fitted_on = []
    fit = scheme_model.fit_scheme
    monkeypatch.setattr(scheme_model, "fit_scheme", lambda *a, **k: fitted_on.append(a[4].itemids) or fit(*a, **k))
    train = SplitData.read(dataset / "train.parquet", LABELS).subset(np.arange(100))
    dev = SplitData.read(dataset / "dev.parquet", LABELS)
    # items 0-9 oversampled: a second row each (copy 1), the same text
    copies = train.subset(np.arange(10))
    copies.copy = np.ones(10, dtype=np.int32)
    both = SplitData(
        train.itemids + copies.itemids, train.texts + copies.texts, np.vstack([train.y, copies.y]),
        np.r_[train.groups, copies.groups], np.r_[train.copy, copies.copy],
    )  # fmt: skip
    rows, probs, seconds = out_of_fold("linear", LinearConfig(min_df=1), GATE, LABELS, both, dev, folds=4)
    assert rows.itemids == train.itemids and probs.shape == (100, 1 + len(LABELS)) and len(seconds) == 4
    assert (probs[:, 1:] <= probs[:, :1] + 1e-6).all()  # joint probabilities, as the final model gives
    for fold_rows in fitted_on:  # a copied item is in a fold model's training rows twice or not at all
        assert all(fold_rows.count(i) == 2 for i in copies.itemids if i in fold_rows)


def test_tuning_plan_out_of_fold_where_affordable_and_honest():
    train = SplitData([str(i) for i in range(50)], ["x"] * 50, np.zeros((50, 2)))
    options = TrainingOptions(oof_max_rows=40)
    assert tuning_plan("linear", options, train, {}) == (5, "")  # linear: always
    folds, note = tuning_plan("textcnn", options, train, {})
    assert folds == 0 and "50 train rows > oof_max_rows 40" in note
    assert tuning_plan("textcnn", TrainingOptions(oof_max_rows=50), train, {}) == (5, "")
    assert tuning_plan("linear", TrainingOptions(threshold_folds=1), train, {}) == (0, "")
    assert tuning_plan("bert", TrainingOptions(), train, {}) == (0, "dev only: bert is not in oof_kinds")
    assert tuning_plan("bert", TrainingOptions(oof_kinds=["bert"]), train, {}) == (5, "")
    # a train split with thinned all-zero items would flatter precision
    folds, note = tuning_plan("linear", options, train, {"options": {"all_zero_ratio": 2.0}})
    assert folds == 0 and "all_zero_ratio" in note


def test_sub_labels_never_fire_without_the_gate_and_probabilities_are_joint(linear, dataset):
    test = SplitData.read(dataset / "test.parquet", LABELS)
    probs = linear.model.predict_proba(test.texts)
    assert (probs[:, 1:] <= probs[:, :1] + 1e-6).all()  # P(gate) × P(label | gate)
    fired = linear.model.decide(probs)
    assert not (fired[:, 1:] & ~fired[:, :1]).any()


def test_save_load_roundtrip_keeps_probabilities_and_thresholds(linear, dataset, tmp_path):
    test = SplitData.read(dataset / "test.parquet", LABELS)
    loaded = SchemeModel.load(linear.model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_proba(test.texts), linear.model.predict_proba(test.texts), atol=1e-6)
    np.testing.assert_array_equal(loaded.thresholds.shipped, linear.model.thresholds.shipped)


def test_textcnn_goes_through_the_same_path(dataset):
    config = TextCNNConfig(max_len=32, embed_dim=32, num_filters=32, max_epochs=8, patience=3, lr=1e-2, num_threads=1)
    epochs = []
    options = TrainingOptions(threshold_folds=2)  # out of fold like linear (600 train rows ≤ oof_max_rows)
    result = train_scheme_model(
        "textcnn", config, dataset, options, on_epoch=lambda task, e, m: epochs.append((task, e))
    )  # fmt: skip
    assert result.test.summary["micro_f1"] >= 0.85, result.test.summary
    assert ("gate", 1) in epochs and ("labels", 1) in epochs  # per-epoch metrics for both tasks
    assert all(task in ("gate", "labels") for task, _ in epochs)  # the fold models log nothing
    assert epochs.count(("gate", 1)) == 1
    assert list(result.test.per_label["label"]) == [GATE, *LABELS]  # same evaluation table as linear
    assert result.model.thresholds.source == "oof(2)+dev" and result.seconds["oof_per_fold"] > 0


def test_register_promote_and_load_the_champion(linear, dataset, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("AUTOTAG_HOME", str(tmp_path))
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.create_experiment("test", artifact_location=(tmp_path / "artifacts").as_uri())  # not ./mlruns
    mlflow.set_experiment("test")
    name = registered_model_name("p0_test", "linear")
    test = SplitData.read(dataset / "test.parquet", LABELS)

    def score(uri: str) -> float:
        return score_on_split(load_scheme_model(uri), test)

    good_dir = linear.model.save(tmp_path / "good")
    with mlflow.start_run():
        first = log_scheme_model(good_dir, name, test.texts)
    decision = promote(name, score)
    assert decision.promoted and decision.reason == "no champion yet"

    # a worse challenger: the same model with its gate threshold pushed up so most gates are missed
    worse = SchemeModel.load(good_dir)
    worse.thresholds.thresholds[0] = 0.999
    worse_dir = worse.save(tmp_path / "worse")
    with mlflow.start_run():
        second = log_scheme_model(worse_dir, name, test.texts)
    decision = promote(name, score, tolerance=0.01)
    assert not decision.promoted and "kept champion" in decision.reason
    assert decision.challenger_score < decision.champion_score

    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == first.version
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == second.version

    # the champion labels raw text as a plain pyfunc: shipped labels and their scores
    champion = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    texts = pl.DataFrame({"text": ["新车谍照曝光", "机油保养技巧"]}).to_pandas()
    out = champion.predict(texts)
    assert list(out.columns) == ["labels", "gate", "scores"]
    assert list(out.loc[0, "labels"][:2]) == [GATE, "新车资讯/谍照"] and list(out.loc[1, "labels"]) == []
    assert out.loc[0, "gate"] and not out.loc[1, "gate"] and "新车资讯/新车到店" not in out.loc[0, "scores"]
    # and, asked for them, one probability column per target, which decide() turns into the same labels
    probs = champion.predict(texts, params={"output": "probabilities"})
    assert list(probs.columns) == [GATE, *LABELS]
    assert probs.iloc[0][GATE] > 0.5 > probs.iloc[1][GATE]
    assert probs.iloc[0][GATE] == pytest.approx(out.loc[0, "scores"][GATE], abs=1e-6)
    decisions = champion.unwrap_python_model().decide(probs)
    assert bool(decisions.iloc[0]["新车资讯/谍照"]) and not decisions.iloc[1].any()
    assert champion_targets(name) == (first.version, [GATE, *LABELS])  # from the logged metadata


def test_top_k_caps_sub_labels_and_travels_with_the_model(dataset, tmp_path):
    result = train_scheme_model("linear", LinearConfig(min_df=1), dataset, TrainingOptions(top_k=1))
    assert result.test.y_pred[:, 1:].sum(axis=1).max() <= 1
    loaded = load_model_dir(result.model.save(tmp_path / "capped"))
    assert loaded.top_k == 1
    probs = loaded.predict_proba(SplitData.read(dataset / "test.parquet", LABELS).texts)
    assert loaded.decide(probs)[:, 1:].sum(axis=1).max() == 1  # the stored cap, no argument needed
    assert loaded.decide(probs, top_k=len(LABELS))[:, 1:].sum(axis=1).max() > 1  # a caller may override it
    agreement = load_model_dir(EnsembleModel([loaded, loaded], "agreement", top_k=2).save(tmp_path / "ens"))
    assert agreement.top_k == 2


@pytest.fixture(scope="module")
def textcnn(dataset):
    config = TextCNNConfig(max_len=32, embed_dim=32, num_filters=32, max_epochs=6, patience=2, lr=1e-2, num_threads=1)
    return train_scheme_model("textcnn", config, dataset, TrainingOptions(threshold_folds=0))  # tuned on dev


def test_mean_and_agreement_ensembles_are_evaluated_like_any_model(linear, textcnn, dataset, tmp_path):
    mean = build_ensemble([linear.model, textcnn.model], "mean", dataset)
    agree = build_ensemble([linear.model, textcnn.model], "agreement", dataset)
    for result in (mean, agree):
        assert list(result.test.per_label["label"]) == [GATE, *LABELS]
        assert result.test.summary["micro_f1"] >= 0.85, result.test.summary
    # agreement fires only where both members fire, so it can only be as precise or more
    assert not (agree.test.y_pred & ~linear.test.y_pred).any()
    assert not (agree.test.y_pred & ~textcnn.test.y_pred).any()
    member_precision = min(linear.test.summary["micro_precision"], textcnn.test.summary["micro_precision"])
    assert agree.test.summary["micro_precision"] >= member_precision
    assert set(agree.shipped_labels()) <= set(linear.shipped_labels()) & set(textcnn.shipped_labels())
    # textcnn kept only dev: both are tuned/judged on dev; the agreement's own bound decides its shipping
    assert mean.model.thresholds.source == agree.model.thresholds.source == "dev"
    t = agree.model.thresholds
    assert t.mode == "agreement" and all(t.lower[j] >= 0.8 for j in np.flatnonzero(t.shipped))

    test = SplitData.read(dataset / "test.parquet", LABELS)
    for model in (mean.model, agree.model):
        loaded = load_model_dir(model.save(tmp_path / model.method))
        np.testing.assert_allclose(loaded.predict_proba(test.texts), model.predict_proba(test.texts), atol=1e-6)
        assert score_on_split(loaded, test) == pytest.approx(score_on_split(model, test))


def test_an_ensemble_of_out_of_fold_members_tunes_on_their_common_rows(linear, dataset):
    other = train_scheme_model("linear", LinearConfig(min_df=1, C=1.0), dataset)
    mean = build_ensemble([linear.model, other.model], "mean", dataset)
    assert mean.model.thresholds.source == "members' out-of-fold (600 train rows)+dev"
    assert mean.model.thresholds.tuning_rows == 800
    agree = build_ensemble([linear.model, other.model], "agreement", dataset)
    assert agree.model.thresholds.tuning_rows == 800
    assert set(agree.shipped_labels()) <= set(linear.shipped_labels()) & set(other.shipped_labels())


def test_a_champion_trained_before_the_taxonomy_changed_is_scored_over_both_label_sets(linear, dataset):
    # 新车到店 retired, 新车资讯/新标签 added since `linear` was trained: no shape error, and a
    # model that lacks the new label misses its gold
    labels = [*LABELS[:-1], "新车资讯/新标签"]
    split = SplitData.read(dataset / "test.parquet", labels)
    split.y[:5, -1] = 1  # five items carry the new label
    targets = [GATE, *labels]
    score = score_on_split(linear.model, split, "micro_recall", targets)
    same = SplitData.read(dataset / "test.parquet", LABELS)
    assert score < score_on_split(linear.model, same, "micro_recall", [GATE, *LABELS])
    assert score_on_split(linear.model, same, "micro_f1", [GATE, *LABELS]) == score_on_split(linear.model, same)


def test_skipping_gate_negative_items_keeps_every_decision():
    """The sub-label model sees only the items whose gate fires; their decisions are unchanged."""
    from dagster_autotag.train.scheme_model import SchemeModel
    from dagster_autotag.train.thresholds import tune_thresholds

    class Fixed:
        def __init__(self, probs):
            self.probs, self.seen = probs, []

        def predict_proba(self, texts):
            self.seen.append(list(texts))
            return self.probs[[int(t) for t in texts]]

    rng = np.random.default_rng(0)
    gate, labels = rng.random((200, 1)), rng.random((200, 2))
    y = (np.hstack([gate, gate * labels]) + rng.normal(0, 0.1, (200, 3)) > 0.4).astype(np.float32)
    model = SchemeModel("bert", "g", ["g/a", "g/b"], Fixed(gate), Fixed(labels))
    texts = [str(i) for i in range(200)]
    full = model.predict_proba(texts)  # no thresholds yet: every item
    model.thresholds = tune_thresholds(y, full, mode="f1", confidence=0)
    skipped = model.predict_proba(texts)  # bert: skipped by default once thresholds exist
    gate_fired = model.decide(full)[:, 0]
    assert 0 < gate_fired.sum() < 200 and len(model.label_model.seen[-1]) == gate_fired.sum()
    np.testing.assert_array_equal(model.decide(skipped), model.decide(full))
    assert (skipped[~gate_fired, 1:] == 0).all() and np.allclose(skipped[gate_fired], full[gate_fired])
    np.testing.assert_array_equal(model.predict_proba(texts, skip_gate_negative=False), full)
