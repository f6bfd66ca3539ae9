"""CPU inference of a fine-tuned BERT in bfloat16 with PyTorch (issue #15, part 3).

On a CPU with AMX or AVX-512 BF16 (this machine: Sapphire Rapids class), oneDNN runs bf16 matrix
products ~4× faster than fp32, and the elementwise work (GELU, LayerNorm, attention) moves half the
bytes. BDCI, 2 cores (bench/onnx_cpu.py, BENCHMARKS.md): 3.2× PyTorch fp32 end to end at max_len 64
and 4.3× at 128, probabilities 5e-4 from fp32's on average, micro-F1 −0.0001. ONNX Runtime's dynamic
int8 has faster matrix products, but slower elementwise kernels (2.4–2.6×), and its per-tensor
activation scales move probabilities 20× more (−0.008 micro-F1). `torch.compile` (inductor, frozen
weights) added nothing end to end and costs ~50 s per process, so it is not used.

Without bf16 hardware oneDNN emulates it slower than fp32: the engine then serves fp32 and says so.
Pure: torch and numpy only.
"""

import copy
import logging

import numpy as np
import torch

from dagster_autotag.train.logits import probabilities
from dagster_autotag.train.tokens import Encoded, sorted_batches

log = logging.getLogger(__name__)


def bf16_supported() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU (AVX-512 BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Bf16Bert:
    """A bfloat16 copy of the model (the fp32 original stays for saving and training)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.dtype = torch.bfloat16 if bf16_supported() else torch.float32
        if self.dtype == torch.float32:
            log.warning("this CPU has no native bf16 (AVX-512 BF16 / AMX): inference=torch_bf16 serves in fp32")
        self.model = copy.deepcopy(model).to(device="cpu", dtype=self.dtype).eval()

    def predict_encoded(self, encoded: Encoded, batch_size: int, n_labels: int, exclusive: bool = False) -> np.ndarray:
        out = np.zeros((len(encoded), n_labels), dtype=np.float32)
        with torch.inference_mode():
            for rows in sorted_batches(encoded.lengths, batch_size):
                ids, mask = encoded.batch(rows)
                out[rows] = probabilities(self.model(ids, mask).float().numpy(), exclusive)
        return out
