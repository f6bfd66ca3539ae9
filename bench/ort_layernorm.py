"""ONNX Runtime's CPU SkipLayerNormalization against Add + LayerNormalization (why bert_onnx leaves it unfused).

    .venv/bin/python bench/ort_layernorm.py [--batch 32] [--seq 64] [--hidden 384] [--threads 1]

One-node graphs on e5-small's activation shape (batch × seq × hidden): the residual add and layer
norm that ORT's transformer optimizer fuses into `SkipLayerNormalization` (com.microsoft), against
the same work as two standard ops. Prints ms per call and the ratio.
"""

import argparse
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def session(nodes: list, inputs: list[str], params: list[str], hidden: int, threads: int):
    shape = ["batch", "seq", hidden]
    graph = helper.make_graph(
        nodes, "ln", [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.full(hidden, 0.5, np.float32), name) for name in params],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=opsets).SerializeToString()
    return ort.InferenceSession(
        model, options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
    )


def timed(sess, feed: dict, repeat: int = 200) -> float:
    sess.run(None, feed)
    started = time.perf_counter()
    for _ in range(repeat):
        sess.run(None, feed)
    return (time.perf_counter() - started) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, skip = (rng.standard_normal((args.batch, args.seq, args.hidden), dtype=np.float32) for _ in range(2))
    fused = session(
        [helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], ["y"], domain="com.microsoft")],
        ["x", "skip"], ["gamma", "beta", "bias"], args.hidden, args.threads,
    )  # fmt: skip
    plain = session(
        [
            helper.make_node("Add", ["x", "skip"], ["sum"]),
            helper.make_node("Add", ["sum", "bias"], ["biased"]),
            helper.make_node("LayerNormalization", ["biased", "gamma", "beta"], ["y"], axis=-1),
        ],
        ["x", "skip"], ["gamma", "beta", "bias"], args.hidden, args.threads,
    )  # fmt: skip
    feed = {"x": x, "skip": skip}
    np.testing.assert_allclose(fused.run(None, feed)[0], plain.run(None, feed)[0], atol=1e-4)  # the same work
    fused_ms, plain_ms = timed(fused, feed), timed(plain, feed)
    print(f"onnxruntime {ort.__version__}, shape {x.shape}, {args.threads} thread(s)")
    print(f"SkipLayerNormalization   {fused_ms:6.2f} ms")
    print(f"Add + Add + LayerNorm    {plain_ms:6.2f} ms   (fused / plain = {fused_ms / plain_ms:.1f}×)")


if __name__ == "__main__":
    main()
