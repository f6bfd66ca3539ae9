"""BERT CPU inference: PyTorch fp32 against ONNX Runtime fp32 and int8 (issue #15, part 3).

    .venv/bin/python bench/onnx_cpu.py --encoder /tmp/e5 [--train-limit 1500] [--eval-limit 1000] [--n-speed 200]

Fine-tunes e5-small (vocabulary-pruned to the BDCI texts, bench/models.py's pruning) on a BDCI
train subset for one epoch at max_len 64 (dev: its first --eval-limit rows; a CPU fine-tuning of
the whole set takes 1.6 h), saves it with inference=onnx_int8 (which exports model.onnx and model.int8.onnx), then on bench/models.py's
BDCI split: micro-F1 on test of each engine with the PyTorch model's dev-tuned thresholds (F1 mode),
and items/s of `TrainedBert.predict_proba` (tokenisation included) at max_len 64 and 128.
Figures vary with the shared machine's load: the script prints `uptime` before and after.
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


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoder", type=Path, required=True, help="make_pretrained_encoder.sh's output")
    parser.add_argument("--train-limit", type=int, default=1500)
    parser.add_argument("--n-speed", type=int, default=200, help="test texts timed per engine and max_len")
    parser.add_argument("--eval-limit", type=int, default=1000, help="dev and test rows scored (CPU time)")
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

    engines = {
        "torch_fp32": TrainedBert.load(model_dir, device="cpu"),
        "onnx_fp32": TrainedBert.load(model_dir, device="cpu"),
        "onnx_int8": TrainedBert.load(model_dir, device="cpu"),
    }
    engines["torch_fp32"].onnx = None
    from dagster_autotag.train.bert_onnx import OnnxBert

    engines["onnx_fp32"].onnx = OnnxBert.load(model_dir, quantized=False, threads=2)
    dev_x, dev_y = (a[: args.eval_limit] for a in data["dev"])
    test_x, test_y = (a[: args.eval_limit] for a in data["test"])
    thresholds = tune_thresholds(dev_y, engines["torch_fp32"].predict_proba(dev_x), mode="f1", confidence=0)
    results: dict = {"load_before": uptime(), "train_rows": len(train_x), "test_rows": len(test_x)}
    for name, engine in engines.items():
        probs = engine.predict_proba(test_x)
        summary = summarise(test_y > 0.5, decide(probs, thresholds, only_shipped=False))
        results[name] = {"test_micro_f1": round(summary["micro_f1"], 4), "test_macro_f1": round(summary["macro_f1"], 4)}
        for max_len in (64, 128):
            engine.config = replace(engine.config, max_len=max_len)
            texts = test_x[: args.n_speed]
            started = time.perf_counter()
            engine.predict_proba(texts)
            results[name][f"items_per_s_len{max_len}"] = round(len(texts) / (time.perf_counter() - started), 1)
            engine.config = replace(engine.config, max_len=64)
        print(name, results[name], flush=True)
    results["load_after"] = uptime()
    for max_len in (64, 128):
        key = f"items_per_s_len{max_len}"
        results[f"int8_speedup_len{max_len}"] = round(results["onnx_int8"][key] / results["torch_fp32"][key], 2)
    delta = results["onnx_int8"]["test_micro_f1"] - results["torch_fp32"]["test_micro_f1"]
    results["int8_micro_f1_delta"] = round(delta, 4)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
