"""Token ids → probabilities batch by batch, for the CPU serving engines (bert_bf16, bert_onnx)."""

from collections.abc import Callable

import numpy as np
import torch

from dagster_autotag.train.tokens import Encoded, sorted_batches


def probabilities(logits: np.ndarray, exclusive: bool) -> np.ndarray:
    """`exclusive`: a softmax over the labels (an exclusive scheme's head), else one sigmoid each."""
    if exclusive:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))


def score_batches(
    encoded: Encoded,
    batch_size: int,
    n_labels: int,
    exclusive: bool,
    logits_of: Callable[[torch.Tensor, torch.Tensor], np.ndarray],
) -> np.ndarray:
    """`logits_of(input_ids, attention_mask)` over length-sorted batches, as probabilities in input order."""
    out = np.zeros((len(encoded), n_labels), dtype=np.float32)
    for rows in sorted_batches(encoded.lengths, batch_size):
        out[rows] = probabilities(logits_of(*encoded.batch(rows)), exclusive)
    return out
