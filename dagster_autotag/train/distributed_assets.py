"""The bert asset's distributed training: torchrun on this machine through Dagster Pipes.

`PipesSubprocessClient` runs `torchrun ... -m dagster_autotag.train.distributed_train` (PyTorch's
own launcher and c10d rendezvous; nothing of ours starts processes per rank). Rank 0's log lines
reach the Dagster run as they happen; its per-epoch metrics come back as Pipes custom messages and
are logged here into the MLflow run that train/tracking.py holds open, so the training processes
never touch MLflow. The saved model and its dev/test probabilities are read back from the run's
folder and evaluated as an in-process training would be.
"""

import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import dagster as dg
import numpy as np

from dagster_autotag.train.configs import BertTrainConfig, TrainingOptions


def torchrun_command(config: BertTrainConfig, run_id: str, script_args: list[str]) -> list[str]:
    """torchrun (as `python -m torch.distributed.run`, the interpreter running Dagster) with the
    config's topology: standalone on one node, else a c10d rendezvous every node joins."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={config.nproc_per_node}"]
    if config.nnodes == 1 and not config.rdzv_endpoint:
        command.append("--standalone")
    else:
        command += [
            f"--nnodes={config.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={config.rdzv_endpoint}",
            f"--rdzv-id={run_id}",
        ]
    return [*command, "-m", "dagster_autotag.train.distributed_train", *script_args]


def train_with_torchrun(
    context: dg.AssetExecutionContext,
    config: BertTrainConfig,
    options: TrainingOptions,
    dataset_dir: Path,
    on_epoch,
    launch_facts: dict,
):
    """TrainingResult of a torchrun job; `launch_facts` receives what the run's metadata shows about it.
    Its work folder (/tmp/autotag-torchrun-*) is removed after a success and kept after a failure."""
    work = Path(tempfile.mkdtemp(prefix="autotag-torchrun-"))
    try:
        result = _launch(context, config, options, dataset_dir, on_epoch, launch_facts, work)
    except BaseException:
        # kept for the post-mortem: the ranks' config, options and whatever rank 0 wrote
        context.log.error(f"torchrun failed; its work folder is kept: {work}")
        raise
    # the model and its probabilities are in memory now; a folder per training would pile up in /tmp
    shutil.rmtree(work, ignore_errors=True)
    return result


def _launch(context, config, options, dataset_dir, on_epoch, launch_facts, work: Path):
    import mlflow

    from dagster_autotag.train.scheme_model import SchemeModel, Scored, training_result

    (work / "config.json").write_text(json.dumps(asdict(config)), encoding="utf-8")
    (work / "options.json").write_text(json.dumps(asdict(options)), encoding="utf-8")
    out = work / "out"
    args = ["--kind", "bert", "--dataset-dir", str(dataset_dir), "--out-dir", str(out),
            "--config-json", str(work / "config.json"), "--options-json", str(work / "options.json")]  # fmt: skip
    command = torchrun_command(config, context.run.run_id, args)
    context.log.info(f"launching {' '.join(command)}")
    # one torch thread pool per rank: nproc_per_node ranks share this machine's cores
    env = {"OMP_NUM_THREADS": str(config.num_threads)}
    invocation = dg.PipesSubprocessClient(env={**os.environ, **env}).run(context=context, command=command)
    messages = invocation.get_custom_messages()
    for message in messages:
        if message.get("type") == "epoch":
            metrics = {k: v for k, v in message.items() if k not in ("type", "task", "epoch")}
            on_epoch(message["task"], message["epoch"], metrics)
    result = next((m for m in messages if m.get("type") == "result"), None)
    if result is None:
        raise RuntimeError(f"torchrun finished without rank 0's result message (work folder {work})")
    world = result["world"]
    launch_facts.update(
        {"distributed_world_size": world["world_size"], "distributed_backend": world["backend"],
         "distributed_nnodes": world["nnodes"], "torchrun_command": " ".join(command),
         # what each rank did (pid, whether it opened Pipes or imported MLflow): the folder goes, this stays
         "distributed_ranks": [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("rank*.json"))]}
    )  # fmt: skip
    mlflow.log_params({f"dist.{k}": v for k, v in world.items()})
    mlflow.set_tag("distributed", f"torchrun {world['world_size']} × {world['backend']}")
    scored = Scored(
        SchemeModel.load(out / "model"), dataset_dir, np.load(out / "dev_probs.npy"), np.load(out / "test_probs.npy"),
        result["seconds"],
    )  # fmt: skip
    return training_result(scored)
