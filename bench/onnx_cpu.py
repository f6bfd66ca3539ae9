"""BERT CPU inference: PyTorch fp32 against PyTorch bf16 and ONNX Runtime fp32/int8 (issue #15, part 3).

    .venv/bin/python bench/onnx_cpu.py --encoder /tmp/e5 [--train-limit 2000] [--eval-limit 2000] [--n-speed 256]

Fine-tunes e5-small (vocabulary-pruned to the BDCI texts, bench/models.py's pruning) on a BDCI
train subset for one epoch at max_len 64 (dev: its first --eval-limit rows; a CPU fine-tuning of
the whole set takes 1.6 h), saves it with inference=onnx_int8 (which exports model.onnx and
model.int8.onnx), then on bench/models.py's BDCI split: micro-F1 on test of each engine with the
PyTorch model's dev-tuned thresholds and with its own, and items/s of `TrainedBert.predict_proba`
(tokenisation included, the default CPU batch) at max_len 64 and 128 on texts that fill max_len.
Speed is timed in --rounds interleaved rounds (every engine once per round) and reported as the
median of each round's ratio to PyTorch fp32: the shared machine's speed drifts by 2× within minutes.
--int8-variants compares quantize_dynamic options (INT8_VARIANTS).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models as bench_models  # noqa: E402  (bench/models.py: the BDCI split and the vocabulary pruning)

# quantize_dynamic options tried for int8 (bert_onnx.INT8_OPTIONS is the one the pipeline uses)
INT8_VARIANTS = {
    "default": None,  # bert_onnx.INT8_OPTIONS, what the pipeline uses
    "per_tensor": {},
    "matmul_only": {"op_types_to_quantize": ["MatMul"]},  # the fused Attention stays fp32
    "matmul_per_channel": {"op_types_to_quantize": ["MatMul"], "per_channel": True},
    "pc_no_gather": {"op_types_to_quantize": ["MatMul", "Attention"], "per_channel": True},
    "pc_ffn_out_fp32": {"per_channel": True, "exclude": r"layer\.\d+/output/dense"},
    "pc_ffn_in_only": {"op_types_to_quantize": ["MatMul"], "per_channel": True, "exclude": r"/output/dense"},
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", type=Path, required=True, help="make_pretrained_encoder.sh's output")
    parser.add_argument("--train-limit", type=int, default=1500)
    parser.add_argument("--n-speed", type=int, default=256, help="test texts timed per engine, max_len and round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--eval-limit", type=int, default=2000, help="dev and test rows scored (CPU time)")
    parser.add_argument("--int8-variants", default="default", help=f"comma-separated, of {sorted(INT8_VARIANTS)}")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "autotag-onnx-bench")
    args = parser.parse_args()

    from dagster_autotag.train.bert import BertTrainConfig, TrainedBert, train_bert
    from dagster_autotag.train.evaluate import summarise
    from dagster_autotag.train.thresholds import decide, tune_thresholds

    print("load:", uptime(), flush=True)
    data = bench_models.load_bdci()
    bench_models.ENCODER, bench_models.PRUNED = args.encoder, args.work / "e5-small-bdci"
    encoder = bench_models.pruned_encoder(data["train"][0] + data["dev"][0] + data["test"][0])
    train_x, train_y = data["train"][0][: args.train_limit], data["train"][1][: args.train_limit]
    model_dir = args.work / "bert"
    if not (model_dir / "model.int8.onnx").exists():
        config = BertTrainConfig(
            model_dir=str(encoder), max_len=64, batch_size=32, lr=5e-5, head_lr=1e-3, max_epochs=1, patience=1,
            num_threads=2, inference="onnx_int8",
        )  # fmt: skip
        started = time.perf_counter()
        dev = (data["dev"][0][: args.eval_limit], data["dev"][1][: args.eval_limit])
        trained = train_bert(train_x, train_y, *dev, config, on_epoch=lambda e, m: print(e, m, flush=True))
        print(f"trained on {len(train_x)} reviews in {time.perf_counter() - started:.0f}s", flush=True)
        trained.save(model_dir)

    import numpy as np

    from dagster_autotag.train import bert_onnx
    from dagster_autotag.train.bert_bf16 import Bf16Bert

    pipeline_options = bert_onnx.INT8_OPTIONS
    torch_model = TrainedBert.load(model_dir, device="cpu")
    torch_model.engine = None
    engines = {"torch_fp32": torch_model, "torch_bf16": TrainedBert.load(model_dir, device="cpu")}
    engines["torch_bf16"].engine = Bf16Bert(torch_model.model)
    # ONNX files from this checkout's exporter (a model trained by an earlier run keeps its weights);
    # each int8 variant is quantised from the same fused fp32 graph
    for variant in args.int8_variants.split(","):
        bert_onnx.INT8_OPTIONS = pipeline_options if INT8_VARIANTS[variant] is None else INT8_VARIANTS[variant]
        bert_onnx.export_onnx(torch_model, model_dir, quantize=True)
        if "onnx_fp32" not in engines:
            engines["onnx_fp32"] = TrainedBert.load(model_dir, device="cpu")
            engines["onnx_fp32"].engine = bert_onnx.OnnxBert.load(model_dir, quantized=False, threads=2)
        engines["onnx_int8" if variant == "default" else f"onnx_int8_{variant}"] = TrainedBert.load(
            model_dir, device="cpu"
        )
    dev_x, dev_y = (a[: args.eval_limit] for a in data["dev"])
    test_x, test_y = (a[: args.eval_limit] for a in data["test"])
    thresholds = tune_thresholds(dev_y, engines["torch_fp32"].predict_proba(dev_x), mode="f1", confidence=0)
    results: dict = {"load_before": uptime(), "train_rows": len(train_x), "test_rows": len(test_x)}
    full_length = bench_models.joined_reviews(data["test"][0])  # every text fills max_len
    reference = None
    for name, engine in engines.items():
        probs = engine.predict_proba(test_x)
        reference = probs if reference is None else reference  # torch_fp32 comes first
        summary = summarise(test_y > 0.5, decide(probs, thresholds, only_shipped=False))
        results[name] = {"test_micro_f1": round(summary["micro_f1"], 4), "test_macro_f1": round(summary["macro_f1"], 4)}
        # how far the engine moves probabilities from fp32's: steadier than an F1 difference on 1.7k reviews
        results[name]["test_mean_abs_dp"] = round(float(np.abs(probs - reference).mean()), 5)
        results[name]["test_max_abs_dp"] = round(float(np.abs(probs - reference).max()), 4)
        # the same engine's dev probabilities for its thresholds: what training does when it serves with it
        own = tune_thresholds(dev_y, engine.predict_proba(dev_x), mode="f1", confidence=0)
        results[name]["test_micro_f1_own_thresholds"] = round(
            summarise(test_y > 0.5, decide(probs, own, only_shipped=False))["micro_f1"], 4
        )
        print(name, results[name], flush=True)
    texts = full_length[: args.n_speed]
    for max_len in (64, 128):
        rates: dict[str, list[float]] = {name: [] for name in engines}
        for engine in engines.values():
            engine.config = replace(engine.config, max_len=max_len)
            engine.predict_proba(texts[:32])  # warm-up (oneDNN's kernels, ORT's arena)
        for _ in range(args.rounds):
            for name, engine in engines.items():
                started = time.perf_counter()
                engine.predict_proba(texts)
                rates[name].append(len(texts) / (time.perf_counter() - started))
        for name in engines:
            ratios = np.array(rates[name]) / np.array(rates["torch_fp32"])
            results[name][f"items_per_s_len{max_len}"] = round(float(np.median(rates[name])), 1)
            results[name][f"speedup_len{max_len}"] = round(float(np.median(ratios)), 2)
            print(name, max_len, [round(r, 1) for r in rates[name]], flush=True)
        for engine in engines.values():
            engine.config = replace(engine.config, max_len=64)
    results["load_after"] = uptime()
    for name in (n for n in engines if n != "torch_fp32"):
        results[f"{name}_micro_f1_delta"] = round(
            results[name]["test_micro_f1"] - results["torch_fp32"]["test_micro_f1"], 4
        )
        own = results[name]["test_micro_f1_own_thresholds"] - results["torch_fp32"]["test_micro_f1_own_thresholds"]
        results[f"{name}_micro_f1_delta_own_thresholds"] = round(own, 4)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
