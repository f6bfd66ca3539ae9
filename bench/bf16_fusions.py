"""What each of bert_bf16's oneDNN fusions buys, in one process, interleaved (issue #15, part 3).

    .venv/bin/python bench/bf16_fusions.py [--max-len 64] [--rounds 15] [--model DIR]

Scores the same texts with PyTorch fp32 and three bf16 copies of bench/onnx_cpu.py's fine-tuned
e5-small (run that first; it saves the model under its --work folder):
- `plain`: `model.to(torch.bfloat16)`, eager PyTorch;
- `linear`: every linear layer through oneDNN's fused primitive, bias and the FFN's GELU inside;
- `residual` (what `inference: torch_bf16` serves): `linear`, and each output block's residual add
  inside its product.
Each round times every engine once, in alternating order; reported: each engine's time relative to
`linear` in the same round, median and quartiles over rounds, compute only (`predict_encoded`, token
ids ready) and end to end (`predict_proba`). This machine's speed drifts within minutes, which is why
only same-round ratios are compared, and why a gain of a few per cent needs 15+ rounds to show.
"""

import argparse
import copy
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models as bench_models  # noqa: E402  (bench/models.py: BDCI)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-len", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n-texts", type=int, default=256)
    parser.add_argument("--model", type=Path, default=Path(tempfile.gettempdir()) / "autotag-onnx-bench" / "bert")
    args = parser.parse_args()
    if not (args.model / "encoder").is_dir():
        sys.exit(f"no fine-tuned model in {args.model}: run bench/onnx_cpu.py first (it saves one there)")

    import torch

    from dagster_autotag.train import bert_bf16
    from dagster_autotag.train.bert import TrainedBert
    from dagster_autotag.train.tokens import encode

    if not bert_bf16.fused_linear_available():
        sys.exit("this CPU has no native bf16 (or this torch has no fused linear primitive): nothing to compare")
    texts = bench_models.joined_reviews(bench_models.load_bdci()["test"][0])[: args.n_texts]  # fill max_len

    engines = {}
    for name in ("fp32", "plain", "linear", "residual"):
        engine = TrainedBert.load(args.model, device="cpu")
        engine.config = replace(engine.config, max_len=args.max_len)
        engine.engine = None if name == "fp32" else bert_bf16.Bf16Bert(engine.model)
        if name == "plain":
            engine.engine.model = copy.deepcopy(engine.model).to(torch.bfloat16).eval()
        elif name == "linear":
            model = copy.deepcopy(engine.model).to(torch.bfloat16).eval()
            bert_bf16.fuse_linears(model, residual=False)
            engine.engine.model = model
        engine.predict_proba(texts[:32])  # warm-up: oneDNN builds its kernels
        engines[name] = engine
    encoded = encode(engines["fp32"].tokenizer, texts, args.max_len)

    seconds: dict[str, dict[str, list[float]]] = {"compute": {n: [] for n in engines}, "e2e": {n: [] for n in engines}}
    for round_ in range(args.rounds):
        for name, engine in list(engines.items())[:: 1 if round_ % 2 == 0 else -1]:
            started = time.perf_counter()
            engine.predict_encoded(encoded)
            seconds["compute"][name].append(time.perf_counter() - started)
            started = time.perf_counter()
            engine.predict_proba(texts)
            seconds["e2e"][name].append(time.perf_counter() - started)
    print(f"{len(texts)} texts at max_len {args.max_len}, {args.rounds} interleaved rounds")
    for kind, by_engine in seconds.items():
        base = np.array(by_engine["linear"])
        for name, times in by_engine.items():
            q25, median, q75 = np.quantile(np.array(times) / base, [0.25, 0.5, 0.75])
            rate = len(texts) / float(np.median(times))
            print(f"{kind:8s} {name:9s} {rate:7.1f} items/s   time / linear's: {median:.3f} ({q25:.3f}–{q75:.3f})")


if __name__ == "__main__":
    main()
