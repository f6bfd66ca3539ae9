"""Logits → probabilities in numpy, for the CPU serving engines (bert_bf16, bert_onnx)."""

import numpy as np


def probabilities(logits: np.ndarray, exclusive: bool) -> np.ndarray:
    """`exclusive`: a softmax over the labels (an exclusive scheme's head), else one sigmoid each."""
    if exclusive:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-logits))
