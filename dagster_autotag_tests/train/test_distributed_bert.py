"""BERT trained by torchrun (2 CPU processes, gloo) through the models/<scheme>/bert asset and
Dagster Pipes, against a one-process training of the same config."""

import json
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import polars as pl
import pytest

from dagster_autotag.corpus.config import Scheme
from dagster_autotag.resources import LakeResource, MlflowResource
from dagster_autotag.train.assets import build_training_asset
from dagster_autotag.train.configs import BertTrainConfig, TrainingOptions
from dagster_autotag.train.scheme_model import train_scheme_model
from dagster_autotag_tests.test_definitions import materializations
from dagster_autotag_tests.train.test_bert import KEYWORDS, synthetic
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir

SCHEME = Scheme(name="p0_newcar", gate=("新车资讯",), label_level=2)
LABELS = [f"新车资讯/{k}" for k in KEYWORDS]
# The 2-rank run's global batches must each give every rank a row: 48 train rows, batch 8.
ROWS = {"train": 48, "dev": 24, "test": 24}
TRAIN = {"max_len": 32, "batch_size": 8, "lr": 3e-3, "head_lr": 1e-2, "max_epochs": 2, "patience": 2,
         "dropout": 0.0, "num_threads": 1}  # fmt: skip


def write_dataset(dataset_dir, seed: int = 0) -> list[str]:
    dataset_dir.mkdir(parents=True)
    all_texts = []
    for i, (split, n) in enumerate(ROWS.items()):
        texts, y = synthetic(n, seed + i)
        gate = y[:, 0] + y[:, 1] > 0  # 谍照 or 上市: the gate; every keyword a sub-label of gate-positive rows
        labels = [[LABELS[j] for j in np.flatnonzero(row)] if g else [] for row, g in zip(y, gate, strict=True)]
        frame = pl.DataFrame(
            {"itemid": [f"{split}{k}" for k in range(n)], "text": texts, "text_hash": texts, "gate": gate.tolist(),
             "labels": labels, "copy": [0] * n},
            schema_overrides={"labels": pl.List(pl.String)},
        )  # fmt: skip
        frame.write_parquet(dataset_dir / f"{split}.parquet")
        all_texts += texts
    manifest = {"gate": list(SCHEME.gate), "labels": LABELS, "rare_labels": [], "rows": ROWS,
                "window": {"start": "2024-05-01", "end": "2024-05-03"}}  # fmt: skip
    (dataset_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return all_texts


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    dataset_dir = LakeResource(home=str(home)).lake() / "datasets" / SCHEME.name
    texts = write_dataset(dataset_dir)
    model_dir = tiny_bert_dir(home / "tiny_bert", texts, hidden=32, layers=1, dropout=0.0)
    uri = f"sqlite:///{home / 'mlflow.db'}"
    resources = {"lake": LakeResource(home=str(home)), "mlflow": MlflowResource(tracking_uri=uri, experiment="ddp")}
    asset = build_training_asset(SCHEME, "bert")
    run_config = {"model_dir": str(model_dir), **TRAIN, "nproc_per_node": 2, "dist_backend": "gloo",
                  "threshold_folds": 0}  # fmt: skip
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AUTOTAG_HOME", str(home))  # MLflow's artifacts go under it
        result = dg.materialize(
            [asset], resources=resources, run_config={"ops": {asset.op.name: {"config": run_config}}}
        )
        yield result, uri, model_dir, dataset_dir


def test_two_gloo_ranks_train_through_pipes_and_mlflow_shows_it(distributed_run):
    result, uri, _, _ = distributed_run
    meta = materializations(result)["models/p0_newcar/bert"]
    assert meta["distributed_world_size"].value == 2 and meta["distributed_backend"].value == "gloo"
    assert "--nproc-per-node=2" in meta["torchrun_command"].value
    client = mlflow.MlflowClient(uri)
    run = client.get_run(meta["mlflow_run_id"].value)
    assert run.data.params["dist.world_size"] == "2" and run.data.tags["distributed"] == "torchrun 2 × gloo"
    history = client.get_metric_history(run.info.run_id, "gate.dev_micro_f1")  # rank 0's epochs, via Pipes
    assert [m.step for m in history] == [1, 2]


def test_only_rank_zero_reports_and_no_rank_touches_mlflow(distributed_run):
    result, _, _, _ = distributed_run
    meta = materializations(result)["models/p0_newcar/bert"]
    records = meta["distributed_ranks"].value
    assert [r["rank"] for r in records] == [0, 1]
    assert [r["opened_pipes"] for r in records] == [True, False]
    assert [r["imported_mlflow"] for r in records] == [False, False]
    assert records[0]["pid"] != records[1]["pid"]
    work = Path(meta["torchrun_command"].value.split("--out-dir ")[1].split(" ")[0]).parent
    assert work.name.startswith("autotag-torchrun-") and not work.exists()  # removed after the success


def test_two_ranks_match_one_process_on_the_same_global_batches(distributed_run):
    result, uri, model_dir, dataset_dir = distributed_run
    from dagster_autotag.train.registry import load_scheme_model

    mlflow.set_tracking_uri(uri)
    two = load_scheme_model("models:/autotag.p0_newcar.bert/1")
    config = BertTrainConfig(model_dir=str(model_dir), **TRAIN)
    one = train_scheme_model("bert", config, dataset_dir, TrainingOptions(threshold_folds=0)).model
    fixed, _ = synthetic(40, 99)
    difference = np.abs(two.predict_proba(fixed) - one.predict_proba(fixed)).max()
    assert difference <= 1e-3, difference
    assert one.gate_model.history != [] and two.gate_model.history[-1]["epoch"] == 2
