"""One scheme model trained by every rank of a torchrun job; rank 0 saves it and reports to Dagster.

    torchrun --nproc-per-node 4 -m dagster_autotag.train.distributed_train \\
        --kind bert --dataset-dir DATASET --out-dir OUT --config-json CONFIG.json [--options-json OPTIONS.json]

The models/<scheme>/bert asset starts it through Dagster Pipes (train/distributed_assets.py); a
cluster launcher (a Kubeflow PyTorchJob, PipesK8sClient running torchrun in pods) runs the same
command unchanged: all it needs is torchrun's environment and a DATASET/OUT folder every node sees.
When Dagster Pipes' environment is present, rank 0 streams its log lines and, at the end, one custom
message per epoch and a summary (rank 0 only: the other ranks never open Pipes, and no rank imports
MLflow; the Dagster side logs the received metrics into its MLflow run and registers the model).

OUT after a run: model/ (SchemeModel.save), dev_probs.npy, test_probs.npy, result.json (seconds,
epochs, world), rank<r>.json for every rank (what it did: for tests and post-mortems).
"""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from dagster_autotag.train import distributed

RESULT_FILE = "result.json"
logger = logging.getLogger("autotag.distributed_train")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", default="bert", choices=["bert"])
    parser.add_argument("--dataset-dir", type=Path, required=True)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--config-json", type=Path, required=True, help="BertTrainConfig as JSON")
    parser.add_argument("--options-json", type=Path, help="TrainingOptions as JSON (default: the defaults)")
    return parser.parse_args(argv)


class Reporter:
    """Rank 0's channel to Dagster when launched through Pipes; a plain logger otherwise."""

    def __init__(self, is_main: bool) -> None:
        self.pipes = None
        if is_main:
            from dagster_pipes import PipesEnvVarParamsLoader, open_dagster_pipes

            if PipesEnvVarParamsLoader().is_dagster_pipes_process():
                self.pipes = open_dagster_pipes()
        self.log = self.pipes.log if self.pipes is not None else logger

    def message(self, payload: dict) -> None:
        if self.pipes is not None:
            self.pipes.report_custom_message(payload)

    def close(self) -> None:
        if self.pipes is not None:
            self.pipes.close()


def main(argv: list[str] | None = None) -> int:
    from dagster_autotag.train.configs import BertTrainConfig, TrainingOptions
    from dagster_autotag.train.scheme_model import fit_and_score

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    config = BertTrainConfig(**json.loads(args.config_json.read_text(encoding="utf-8")))
    options = TrainingOptions(
        **(json.loads(args.options_json.read_text(encoding="utf-8")) if args.options_json else {})
    )
    rank = distributed.init_from_env(config.dist_backend)
    reporter = Reporter(rank.is_main)
    epochs: list[dict] = []
    try:
        world = {"world_size": rank.world_size, "backend": rank.backend or "none", "nnodes": _nnodes()}
        reporter.log.info(f"rank {rank.rank} of {rank.world_size} ({world['backend']}): training {args.kind}")

        def on_epoch(task: str, epoch: int, metrics: dict) -> None:
            epochs.append({"task": task, "epoch": epoch, **{k: float(v) for k, v in metrics.items()}})
            reporter.log.info(f"{task} epoch {epoch}: {metrics}")

        started = time.perf_counter()
        scored = fit_and_score(args.kind, config, args.dataset_dir, options, on_epoch)
        seconds = {**scored.seconds, "total": time.perf_counter() - started}
        if rank.is_main:
            args.out_dir.mkdir(parents=True, exist_ok=True)
            scored.model.save(args.out_dir / "model")
            np.save(args.out_dir / "dev_probs.npy", scored.dev_probs)
            np.save(args.out_dir / "test_probs.npy", scored.test_probs)
            result = {"seconds": seconds, "epochs": epochs, "world": world}
            (args.out_dir / RESULT_FILE).write_text(json.dumps(result, indent=1), encoding="utf-8")
            for row in epochs:
                reporter.message({"type": "epoch", **row})
            reporter.message({"type": "result", "world": world, "seconds": seconds})
        _write_rank_record(args.out_dir, rank, reporter)
    finally:
        reporter.close()
        distributed.shutdown()
    return 0


def _nnodes() -> int:
    world, local = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(world // max(local, 1), 1)


def _write_rank_record(out_dir: Path, rank: distributed.Rank, reporter: Reporter) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {
        "rank": rank.rank,
        "world_size": rank.world_size,
        "opened_pipes": reporter.pipes is not None,
        "imported_mlflow": "mlflow" in sys.modules,
        "pid": os.getpid(),
    }
    (out_dir / f"rank{rank.rank}.json").write_text(json.dumps(record), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
