"""BERT's linear layers in bf16 on CPU: PyTorch's eager ops against oneDNN's fused primitives.

    .venv/bin/python bench/bf16_linear.py [--tokens 2048] [--threads 2]

e5-small's layers on batch × seq tokens, bf16, as `train/bert_bf16.py` runs them:
- the FFN input projection (384 → 1536): eager `F.linear` (bias broadcast into the output, then the
  product), then `F.gelu`; against `torch.ops.mkldnn._linear_pointwise` with the bias, and with the
  bias and the GELU, fused;
- query, key and value (3 × 384 → 384): three fused products against one of width 1152;
- an output block's product and residual add: fused product then `+`, against the add inside the
  product (`_linear_pointwise.binary`).
"""

import argparse
import time

import torch


def timed(fn, repeat: int = 100) -> float:
    for _ in range(3):
        fn()
    started = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - started) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=2048, help="batch × seq (32 × 64)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.tokens // 64, 64, 384).bfloat16()
    weight, bias = torch.randn(1536, 384).bfloat16() / 20, torch.randn(1536).bfloat16()
    fused = torch.ops.mkldnn._linear_pointwise
    with torch.inference_mode():
        rows = {
            "F.linear": timed(lambda: torch.nn.functional.linear(x, weight, bias)),
            "F.linear without bias": timed(lambda: torch.nn.functional.linear(x, weight)),
            "fused linear (bias inside)": timed(lambda: fused(x, weight, bias, "none", [], "")),
            "F.linear + F.gelu": timed(lambda: torch.nn.functional.gelu(torch.nn.functional.linear(x, weight, bias))),
            "fused linear + GELU": timed(lambda: fused(x, weight, bias, "gelu", [], "none")),
        }
        qkv = [torch.randn(384, 384).bfloat16() / 20 for _ in range(3)]
        qkv_bias = [torch.randn(384).bfloat16() for _ in range(3)]
        wide, wide_bias = torch.cat(qkv), torch.cat(qkv_bias)
        rows["q, k, v: three fused linears"] = timed(
            lambda: [fused(x, w, b, "none", [], "") for w, b in zip(qkv, qkv_bias)]
        )
        rows["q, k, v: one of width 1152"] = timed(lambda: fused(x, wide, wide_bias, "none", [], ""))  # not kept
        residual = torch.randn_like(x)
        rows["output: fused linear, then +"] = timed(lambda: fused(x, qkv[0], qkv_bias[0], "none", [], "") + residual)
        rows["output: + inside the linear"] = timed(lambda: fused.binary(x, residual, qkv[0], qkv_bias[0], "add"))
        eager = torch.nn.functional.gelu(torch.nn.functional.linear(x.float(), weight.float(), bias.float()))
        error = (fused(x, weight, bias, "gelu", [], "none").float() - eager).abs().max().item()
    print(f"torch {torch.__version__}, {tuple(x.shape)} tokens, bf16, {args.threads} threads")
    for name, ms in rows.items():
        print(f"{name:30s} {ms:6.2f} ms")
    print(f"fused GELU vs fp32 eager: max abs difference {error:.3f} (bf16 rounding)")


if __name__ == "__main__":
    main()
