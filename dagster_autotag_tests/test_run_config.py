"""Run config derived from the option dataclasses (run_config.py): one declaration per option."""

import dataclasses
from typing import Literal

import dagster as dg
import pytest

from dagster_autotag.corpus.assets import DatasetRunConfig
from dagster_autotag.corpus.config import Scheme
from dagster_autotag.corpus.splits import SplitOptions
from dagster_autotag.options import option
from dagster_autotag.run_config import config_from_dataclass
from dagster_autotag.train.assets import (
    BERT_DIR_ENV,
    BertRunConfig,
    KNNRunConfig,
    LinearRunConfig,
    TextCNNRunConfig,
    TrainRunConfig,
    build_training_asset,
)
from dagster_autotag.train.configs import BertTrainConfig, KNNConfig, LinearConfig, TextCNNConfig, TrainingOptions

# Dagster config class, its dataclass, dataclass field → run config key where they differ
DERIVED = [
    (TrainRunConfig, TrainingOptions, {}),
    (LinearRunConfig, LinearConfig, {"C": "c"}),
    (TextCNNRunConfig, TextCNNConfig, {"top_k": "pooling_top_k"}),
    (BertRunConfig, BertTrainConfig, {}),
    (KNNRunConfig, KNNConfig, {}),
    (DatasetRunConfig, SplitOptions, {"ratios": ("train_ratio", "dev_ratio", "test_ratio")}),
]
BERT_OPTIONS = {
    "head_lr": 5e-4,
    "weight_decay": 0.05,
    "grad_clip": 0.5,
    "dropout": 0.2,
    "precision": "fp32",
    "pos_weight_cap": 3.0,
}


def schema_fields(config_class: type[dg.Config]) -> dict:
    """What Dagster shows in the launchpad and validates run config against: key → config Field."""

    @dg.asset
    def probe(config: config_class) -> None: ...

    return dict(probe.op.config_schema.config_type.fields)


def as_config_value(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize(("config_class", "source", "keys"), DERIVED, ids=lambda x: getattr(x, "__name__", ""))
def test_every_dataclass_option_is_in_the_run_config_with_its_default(config_class, source, keys):
    shown = schema_fields(config_class)
    for f in dataclasses.fields(source):
        key = keys.get(f.name, f.name)
        if f.default is dataclasses.MISSING:  # BERT's model_dir: the run config's default is $AUTOTAG_BERT_MODEL_DIR
            assert key in shown and shown[key].default_value == ""
        elif isinstance(key, tuple):  # SplitOptions.ratios: three numbers
            assert [shown[k].default_value for k in key] == list(f.default)
        else:
            assert key in shown, f"{source.__name__}.{f.name} cannot be set from run config"
            assert shown[key].default_value == as_config_value(f.default), key


def test_default_run_config_gives_the_default_dataclass(tmp_path, monkeypatch):
    assert LinearRunConfig().to_dataclass() == LinearConfig()
    assert TextCNNRunConfig().to_dataclass() == TextCNNConfig()
    assert DatasetRunConfig().to_dataclass() == SplitOptions()
    monkeypatch.setenv(BERT_DIR_ENV, str(tmp_path))
    assert BertRunConfig().to_dataclass() == BertTrainConfig(model_dir=str(tmp_path))


def test_a_new_dataclass_option_reaches_the_run_config_without_more_code():
    @dataclasses.dataclass
    class Options:
        size: int = option(3, "how many")
        sizes: tuple[int, ...] = (1, 2)
        mode: Literal["a", "b"] = "a"
        weighting: Literal["balanced"] | None = option("balanced", "class weights")

    class RunConfig(config_from_dataclass(Options, base=TrainRunConfig)):
        pass

    shown = schema_fields(RunConfig)
    assert {"size", "sizes", "mode", "weighting", "precision_floor"} <= set(shown)
    assert shown["size"].description == "how many"
    assert shown["weighting"].description == "class weights (balanced | null)"
    assert RunConfig(sizes=[4], weighting=None).to_dataclass() == Options(sizes=(4,), weighting=None)


def test_the_six_bert_options_can_be_set_from_run_config(tmp_path):
    seen = {}

    @dg.asset
    def probe(config: BertRunConfig) -> None:
        seen["config"] = config.to_dataclass()

    run_config = {"ops": {"probe": {"config": {"model_dir": str(tmp_path), **BERT_OPTIONS}}}}
    assert dg.materialize([probe], run_config=run_config).success
    assert {k: getattr(seen["config"], k) for k in BERT_OPTIONS} == BERT_OPTIONS
    assert seen["config"].model_dir == str(tmp_path)
    # and the training asset itself takes them
    asset = build_training_asset(Scheme(name="p0_newcar", gate=("新车资讯",), label_level=2), "bert")
    assert set(BERT_OPTIONS) <= set(asset.op.config_schema.config_type.fields)


def test_textcnn_max_len_defaults_to_the_dataclass_rule():
    """None in both: 128 tokens for char, 64 for word (the old run config said 128 for both)."""
    assert TextCNNRunConfig().max_len is None
    assert TextCNNRunConfig().to_dataclass().effective_max_len == 128
    assert TextCNNRunConfig(tokenizer="word").to_dataclass().effective_max_len == 64
    assert TextCNNRunConfig(max_len=96).to_dataclass().effective_max_len == 96


def test_textcnn_run_configs_scaffolded_before_still_work():
    """The old run config wrote 0 for embed_dim and "" for the vectors where the dataclass says None."""
    old = TextCNNRunConfig(max_len=128, embed_dim=0, vectors_npy="", vectors_vocab="").to_dataclass()
    assert old == TextCNNConfig(max_len=128)


def test_run_config_values_reach_the_dataclasses():
    seen = {}

    @dg.asset
    def linear(config: LinearRunConfig) -> None:
        seen["linear"] = config.to_dataclass()

    @dg.asset
    def textcnn(config: TextCNNRunConfig) -> None:
        seen["textcnn"] = config.to_dataclass()

    @dg.asset
    def dataset(config: DatasetRunConfig) -> None:
        seen["dataset"] = config.to_dataclass()

    run_config = {
        "ops": {
            "linear": {"config": {"c": 0.5, "class_weight": None, "ngram_range": [1, 2], "top_k": 2}},
            "textcnn": {"config": {"tokenizer": "word", "kernel_sizes": [3, 5], "pooling_top_k": 2, "top_k": 1}},
            "dataset": {"config": {"train_ratio": 0.6, "dev_ratio": 0.2, "test_ratio": 0.2, "seed": 7}},
        }
    }
    assert dg.materialize([linear, textcnn, dataset], run_config=run_config).success
    assert (seen["linear"].C, seen["linear"].class_weight, seen["linear"].ngram_range) == (0.5, None, (1, 2))
    assert (seen["textcnn"].tokenizer, seen["textcnn"].kernel_sizes, seen["textcnn"].top_k) == ("word", (3, 5), 2)
    assert seen["dataset"] == SplitOptions(ratios=(0.6, 0.2, 0.2), seed=7)


def test_a_value_outside_a_literal_is_refused_by_dagster():
    @dg.asset
    def textcnn(config: TextCNNRunConfig) -> None: ...

    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.materialize([textcnn], run_config={"ops": {"textcnn": {"config": {"tokenizer": "bpe"}}}})


def test_a_dataclass_option_may_not_shadow_a_base_option():
    with pytest.raises(ValueError, match="top_k"):
        config_from_dataclass(TextCNNConfig, base=TrainRunConfig)
