"""CPU inference of a fine-tuned BERT in bfloat16 with PyTorch (issue #15, part 3).

On a CPU with AMX or AVX-512 BF16 (this machine: Sapphire Rapids class), oneDNN runs bf16 matrix
products ~4× faster than fp32, and the elementwise work (GELU, LayerNorm, attention) moves half the
bytes. BDCI, 2 cores (bench/onnx_cpu.py, BENCHMARKS.md): 2.9–3.1× PyTorch fp32 end to end at max_len
64 and 3.1–3.6× at 128, probabilities 5e-4 from fp32's on average, the same micro-F1. ONNX Runtime's dynamic
int8 has faster matrix products, but slower elementwise kernels (2.3–2.7×), and its per-tensor
activation scales move probabilities 20× more (−0.008 micro-F1). `torch.compile` (inductor, frozen
weights) added nothing end to end and costs ~50 s per process, so it is not used.

What it took instead: every `nn.Linear` goes through oneDNN's fused linear primitive (the op
inductor itself emits on CPU), with the bias, and the FFN's GELU, applied inside the product:
PyTorch's eager bf16 `addmm` first copies the broadcast bias into its output, and GELU is one more
pass over the widest activation (bench/bf16_linear.py).

Without bf16 hardware oneDNN emulates it slower than fp32: the engine then serves fp32 and says so.
Pure: torch and numpy only.
"""

import copy
import logging

import numpy as np
import torch
from torch import nn

from dagster_autotag.train.logits import score_batches
from dagster_autotag.train.tokens import Encoded

log = logging.getLogger(__name__)


def bf16_supported() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def fused_linear_available() -> bool:
    return bf16_supported() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class FusedLinear(nn.Module):
    """An nn.Linear (and an optional GELU after it) as one oneDNN primitive call."""

    def __init__(self, linear: nn.Linear, gelu: bool = False) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.attr, self.algorithm = ("gelu", "none") if gelu else ("none", "")  # "none": GELU with erf, as HF's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.attr, [], self.algorithm)


def fuse_linears(model: nn.Module) -> int:
    """In place: each nn.Linear → FusedLinear; a BERT intermediate block (dense then exact GELU) → one
    FusedLinear with the GELU inside. Returns how many GELUs were fused."""
    fused_gelu = 0
    for module in list(model.modules()):
        act = getattr(module, "intermediate_act_fn", None)
        if isinstance(getattr(module, "dense", None), nn.Linear) and getattr(act, "act", None) is nn.functional.gelu:
            module.dense, module.intermediate_act_fn = FusedLinear(module.dense, gelu=True), nn.Identity()
            fused_gelu += 1
        for name, child in module.named_children():
            if isinstance(child, nn.Linear):
                setattr(module, name, FusedLinear(child))
    return fused_gelu


class Bf16Bert:
    """A bfloat16 copy of the model (the fp32 original stays for saving and training)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.dtype = torch.bfloat16 if bf16_supported() else torch.float32
        if self.dtype == torch.float32:
            log.warning("this CPU has no native bf16 (AVX-512 BF16 / AMX): inference=torch_bf16 serves in fp32")
        self.model = copy.deepcopy(model).to(device="cpu", dtype=self.dtype).eval()
        self.fused_gelu = fuse_linears(self.model) if fused_linear_available() else 0

    def predict_encoded(self, encoded: Encoded, batch_size: int, n_labels: int, exclusive: bool = False) -> np.ndarray:
        with torch.inference_mode():
            return score_batches(
                encoded, batch_size, n_labels, exclusive, lambda ids, mask: self.model(ids, mask).float().numpy()
            )
