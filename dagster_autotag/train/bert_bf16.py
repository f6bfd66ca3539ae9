"""CPU inference of a fine-tuned BERT in bfloat16 with PyTorch (issue #15, part 3).

On a CPU with AMX or AVX-512 BF16 (this machine: Sapphire Rapids class), oneDNN runs bf16 matrix
products ~4× faster than fp32, and the elementwise work (GELU, LayerNorm, attention) moves half the
bytes. BDCI, 2 cores (bench/onnx_cpu.py, BENCHMARKS.md): 3.2–4.0× PyTorch fp32 end to end at max_len
64 and 3.4–4.7× at 128 over three runs of this code, probabilities 5e-4 from fp32's on average,
micro-F1 within 0.001. ONNX Runtime's dynamic int8 has faster matrix products, but slower elementwise
kernels (2.3–3.0×), and its per-tensor activation scales move probabilities 20× more (−0.008 micro-F1).
`torch.compile` (inductor, frozen weights) added nothing end to end and costs ~50 s per process, so it
is not used.

What it took instead: every `nn.Linear` goes through oneDNN's fused linear primitive (the op
inductor itself emits on CPU), with what follows it inside the product: the bias (PyTorch's eager
bf16 `addmm` first copies the broadcast bias into its output), the FFN's GELU (one more pass over
the widest activation) and an output block's residual add (bench/bf16_linear.py).

Without bf16 hardware oneDNN emulates it slower than fp32: the engine then serves fp32 and says so.
Pure: torch and numpy only.
"""

import copy
import inspect
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


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, gelu: bool = False) -> torch.Tensor:
    # "none" as the algorithm: GELU with erf, as HF's (its tanh form is 23x slower in bf16)
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, *(("gelu", [], "none") if gelu else ("none", [], "")))


class FusedLinear(nn.Module):
    """An nn.Linear (and an optional GELU after it) as one oneDNN primitive call."""

    def __init__(self, linear: nn.Linear, gelu: bool = False) -> None:
        super().__init__()
        self.weight, self.bias, self.gelu = linear.weight, linear.bias, gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _linear(x, self.weight, self.bias, self.gelu)


class ResidualOutput(nn.Module):
    """A BERT attention or FFN output block, LayerNorm(dense(h) + residual), with the residual added
    inside the product (oneDNN's binary post-op): one pass less over the hidden states. Inference
    only: the block's dropout is dropped."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.weight, self.bias, self.LayerNorm = block.dense.weight, block.dense.bias, block.LayerNorm

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        summed = torch.ops.mkldnn._linear_pointwise.binary(hidden_states, input_tensor, self.weight, self.bias, "add")
        return self.LayerNorm(summed)


def _is_residual_output(module: nn.Module) -> bool:
    """BERT's SelfOutput / Output (RoBERTa, XLM-R alike): forward(hidden_states, input_tensor) =
    LayerNorm(dropout(dense(hidden_states)) + input_tensor)."""
    return (
        isinstance(getattr(module, "dense", None), nn.Linear)
        and isinstance(getattr(module, "LayerNorm", None), nn.LayerNorm)
        and type(module).__name__.endswith("Output")
        and list(inspect.signature(module.forward).parameters) == ["hidden_states", "input_tensor"]
    )


def fuse_linears(model: nn.Module, residual: bool = True) -> dict[str, int]:
    """In place, for oneDNN's fused primitives: an output block → its product with the residual added
    inside (`residual`; bench/bf16_fusions.py turns it off to measure it); an intermediate block (dense
    then exact GELU) → one product with the GELU inside; every other nn.Linear → FusedLinear. Returns
    how many of each kind were fused.

    Not fused: query, key and value as one product of width 3×hidden. oneDNN runs it no faster at
    e5-small's sizes, and the slices it leaves are strided, which attention then copies (BDCI: ±1 %)."""
    fused = {"residual": 0, "gelu": 0}
    for module in list(model.modules()):
        act = getattr(module, "intermediate_act_fn", None)
        if isinstance(getattr(module, "dense", None), nn.Linear) and getattr(act, "act", None) is nn.functional.gelu:
            module.dense, module.intermediate_act_fn = FusedLinear(module.dense, gelu=True), nn.Identity()
            fused["gelu"] += 1
        for name, child in module.named_children():
            if residual and _is_residual_output(child):
                setattr(module, name, ResidualOutput(child))
                fused["residual"] += 1
            elif isinstance(child, nn.Linear):
                setattr(module, name, FusedLinear(child))
    return fused


class Bf16Bert:
    """A bfloat16 copy of the model (the fp32 original stays for saving and training)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.dtype = torch.bfloat16 if bf16_supported() else torch.float32
        if self.dtype == torch.float32:
            log.warning("this CPU has no native bf16 (AVX-512 BF16 / AMX): inference=torch_bf16 serves in fp32")
        self.model = copy.deepcopy(model).to(device="cpu", dtype=self.dtype).eval()
        self.fused = fuse_linears(self.model) if fused_linear_available() else {}

    def predict_encoded(self, encoded: Encoded, batch_size: int, n_labels: int, exclusive: bool = False) -> np.ndarray:
        with torch.inference_mode():
            return score_batches(
                encoded, batch_size, n_labels, exclusive, lambda ids, mask: self.model(ids, mask).float().numpy()
            )
