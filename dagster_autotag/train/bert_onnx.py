"""CPU inference of a fine-tuned BERT with ONNX Runtime, optionally int8 (dynamic quantisation).

Issue #15: PyTorch fp32 scored 16.6 items/s on this machine's 2 cores. ONNX Runtime fuses the
encoder's attention and layer-norm subgraphs, and dynamic quantisation turns the linear layers'
weights into int8 (activations quantised per batch at run time; no calibration set needed), which
VNNI cores execute several times faster. Chosen over hand-written int8 kernels or torch's own
dynamic quantisation: ORT is the maintained, widely deployed path for transformer CPU serving.

The encoder is exported with eager attention, whose graph ORT's transformer optimizer recognises
and fuses into its `Attention` kernel (with SDPA's graph it fuses nothing): at max_len 128, where
attention is a larger share of the work, that fusion is most of the int8 speed-up (BENCHMARKS.md).
Residual add + LayerNorm are left unfused: ORT 1.32's CPU `SkipLayerNormalization` is 3–4× slower
than `Add` + `LayerNormalization` doing the same work (bench/ort_layernorm.py), and took a third of
the int8 model's time; unfused, int8 went from 78 to 111 items/s on one thread (BENCHMARKS.md).

Files next to the PyTorch weights (TrainedBert.save): model.onnx (fused fp32) and model.int8.onnx.
"""

import re
from pathlib import Path

import numpy as np
import onnx
import torch

from dagster_autotag.train.logits import score_batches
from dagster_autotag.train.tokens import Encoded

FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
# quantize_dynamic options, chosen on BDCI by bench/onnx_cpu.py: per-channel weight scales lost the
# least micro-F1 of the variants that keep int8 speed (BENCHMARKS.md)
INT8_OPTIONS: dict = {"per_channel": True}
OPSET = 17
UNFUSED = ["SkipLayerNormFusion"]  # ONNX Runtime's own graph optimizer would fuse them again at load


def export_onnx(trained, path: Path, quantize: bool) -> Path:
    """`trained` (a TrainedBert) → path/model.onnx (and model.int8.onnx); batch and sequence axes dynamic."""
    model = trained.model
    device = next(model.parameters()).device
    attention = model.encoder.config._attn_implementation
    model.to("cpu").eval()
    model.encoder.set_attn_implementation("eager")  # the pattern ORT's optimizer fuses
    try:
        ids = torch.ones((2, 16), dtype=torch.int64)
        mask = torch.ones((2, 16), dtype=torch.int64)
        mask[1, 9:] = 0  # a padded row, so that tracing keeps the masked-attention path
        axes = {0: "batch", 1: "sequence"}
        torch.onnx.export(
            model,
            (ids, mask),
            str(path / FP32_FILE),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "logits": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: stable dynamic axes for HF encoders
        )
    finally:
        model.encoder.set_attn_implementation(attention)
        model.to(device)
    fuse(path / FP32_FILE, model.encoder.config)
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        options = dict(INT8_OPTIONS)
        if "exclude" in options:  # a pattern over node names: those layers stay fp32
            pattern = re.compile(options.pop("exclude"))
            graph = onnx.load(str(path / FP32_FILE), load_external_data=False).graph
            options["nodes_to_exclude"] = [node.name for node in graph.node if pattern.search(node.name)]
        quantize_dynamic(
            str(path / FP32_FILE), str(path / INT8_FILE), weight_type=QuantType.QInt8, **options,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # the fused ops' outputs have no inferred type
        )  # fmt: skip
    return path


def fuse(file: Path, encoder_config) -> None:
    """ORT's transformer optimizer in place: Attention and BiasGelu fused, residual LayerNorm not."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = False
    optimized = optimize_model(
        str(file), model_type="bert", num_heads=encoder_config.num_attention_heads,
        hidden_size=encoder_config.hidden_size, optimization_options=options,
    )  # fmt: skip
    optimized.save_model_to_file(str(file))


class OnnxBert:
    """An ONNX Runtime session over the exported model: token ids in, probabilities out."""

    def __init__(self, session) -> None:
        self.session = session

    @classmethod
    def load(cls, path: Path, quantized: bool, threads: int) -> "OnnxBert":
        import onnxruntime as ort

        file = path / (INT8_FILE if quantized else FP32_FILE)
        if not file.exists():
            raise FileNotFoundError(f"{file} is missing: the model was saved without ONNX export (inference=torch)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(
            str(file), options, providers=["CPUExecutionProvider"], disabled_optimizers=UNFUSED
        )
        return cls(session)

    def predict_encoded(self, encoded: Encoded, batch_size: int, n_labels: int, exclusive: bool = False) -> np.ndarray:
        def logits_of(ids: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
            return self.session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]

        return score_batches(encoded, batch_size, n_labels, exclusive, logits_of)
