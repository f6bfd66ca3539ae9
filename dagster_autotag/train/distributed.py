"""Where this process stands in a torch.distributed job started by torchrun (or any launcher that
sets torchrun's environment: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT — a Kubeflow
PyTorchJob, PipesK8sClient running torchrun in a pod, ...). Outside one, a world of one.

Pure: torch only. The trainer (bert.py) asks `current()` and shards its batches, all-reduces its
metrics and lets rank 0 alone report and save.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")


def init_from_env(backend: str = "auto") -> Rank:
    """Joins the process group torchrun's environment describes (nccl on GPUs, gloo on CPU);
    a world of one when WORLD_SIZE is absent or 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return current()


def current() -> Rank:
    if not (dist.is_available() and dist.is_initialized()):
        return Rank()
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(array: np.ndarray, device: torch.device) -> np.ndarray:
    """The element-wise sum of `array` over all ranks (itself in a world of one)."""
    if not current().distributed:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy().astype(array.dtype)


def shard(rows: np.ndarray, rank: Rank) -> np.ndarray:
    """This rank's contiguous part of a global batch (near-equal parts, every rank one)."""
    return np.array_split(rows, rank.world_size)[rank.rank] if rank.distributed else rows
