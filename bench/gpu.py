"""BERT on a GPU with the project's own trainer and predictor (train/bert.py), e5-small (issue #15).

    python bench/gpu.py --encoder ENCODER_DIR                 # THUCNews + BDCI + inference, ≤ 5 min on one H200
    python bench/gpu.py --smoke                               # a tiny random BERT on small subsets (CPU, tests)

Needs only torch, transformers, numpy and scikit-learn (no Dagster, polars or MLflow: copy the
repository's dagster_autotag/ folder, this file and a packed encoder to the GPU machine and run it
with PYTHONPATH pointing at the copy). ENCODER_DIR: bench/pack_encoder.py's output (e5-small,
vocabulary-pruned, fp16 on disk, ~50 MB) or make_pretrained_encoder.sh's.

Prints, as JSON lines:
- THUCNews (10 classes, headlines, max_len 32): training samples/s of the epochs without and with
  the dev evaluation, test accuracy (argmax);
- BDCI 2018 car reviews (10 aspects, multi-label, bench/models.py's content_id split, max_len 128):
  training samples/s, test micro-F1 with per-label thresholds tuned on dev (F1 mode);
- inference end to end from raw text (`TrainedBert.predict_proba`: tokenisation included) at
  max_len 32/128/256 on BDCI reviews repeated to --n-infer texts: docs/s and the tokenisation share
  (the same texts tokenised alone, by train/tokens.encode).
"""

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = ROOT.parent / "shared" / "datasets"


def emit(record: dict) -> None:
    print(json.dumps(record, ensure_ascii=False), flush=True)


def load_thucnews(root: Path, split: str, limit: int | None) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for line in (root / "thucnews" / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        if line.strip():
            text, label = line.rsplit("\t", 1)
            texts.append(text)
            labels.append(int(label))
    return texts[:limit], np.asarray(labels[:limit])


def load_bdci(root: Path) -> dict:
    """bench/models.py's split (same seed and order), without polars: reviews grouped by content_id
    in first-seen order, 80/20 by a seed-0 permutation, dev = the first 10 % of the train part."""
    contents: dict[str, str] = {}
    subjects: dict[str, set] = {}
    with (root / "bdci2018_car" / "round1.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            contents.setdefault(row["content_id"], row["content"])
            subjects.setdefault(row["content_id"], set()).add(row["subject"])
    names = sorted(set().union(*subjects.values()))
    ids = list(contents)
    order = np.random.default_rng(0).permutation(len(ids))
    cut = int(0.8 * len(ids))
    n_dev = int(0.1 * cut)
    data: dict = {"names": names}
    for split, rows in {"dev": order[:n_dev], "train": order[n_dev:cut], "test": order[cut:]}.items():
        y = np.zeros((len(rows), len(names)), dtype=np.float32)
        for i, r in enumerate(rows):
            for s in subjects[ids[r]]:
                y[i, names.index(s)] = 1.0
        data[split] = ([contents[ids[r]] for r in rows], y)
    return data


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.zeros((len(labels), n), dtype=np.float32)
    y[np.arange(len(labels)), labels] = 1.0
    return y


def per_label_thresholds(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each label's dev-F1-maximising cut among 0.05 … 0.95."""
    grid = np.arange(0.05, 0.96, 0.05)
    best = np.full(y.shape[1], 0.5)
    for j in range(y.shape[1]):
        f1 = [_f1(y[:, j] > 0.5, probs[:, j] >= t) for t in grid]
        best[j] = grid[int(np.argmax(f1))]
    return best


def _f1(truth: np.ndarray, pred: np.ndarray) -> float:
    tp = float((truth & pred).sum())
    return 2 * tp / max(float(truth.sum() + pred.sum()), 1.0)


def training_figures(model, n_train: int) -> dict:
    """Samples/s over the epochs run: the training loop alone, and with each epoch's dev evaluation."""
    train_s = sum(h["train_seconds"] for h in model.history)
    dev_s = sum(h["dev_seconds"] for h in model.history)
    epochs = len(model.history)
    return {
        "epochs": epochs,
        "train_samples_per_s": round(epochs * n_train / train_s, 1),
        "train_samples_per_s_with_dev": round(epochs * n_train / (train_s + dev_s), 1),
    }


def run_thucnews(args, encoder: Path, config_kw: dict) -> None:
    from dagster_autotag.train.bert import BertTrainConfig, train_bert

    train = load_thucnews(args.data, "train", args.limit)
    dev = load_thucnews(args.data, "dev", args.limit)
    test = load_thucnews(args.data, "test", args.limit)
    n = 10
    config = BertTrainConfig(model_dir=str(encoder), max_len=32, **config_kw)
    started = time.perf_counter()
    model = train_bert(train[0], one_hot(train[1], n), dev[0], one_hot(dev[1], n), config)
    wall = time.perf_counter() - started
    accuracy = float((model.predict_proba(test[0]).argmax(axis=1) == test[1]).mean())
    emit({"bench": "thucnews", "device": str(model.device), "train_rows": len(train[0]), "wall_s": round(wall, 1),
          **training_figures(model, len(train[0])), "test_accuracy": round(accuracy, 4)})  # fmt: skip


def run_bdci(args, encoder: Path, config_kw: dict) -> list[str]:
    from dagster_autotag.train.bert import BertTrainConfig, train_bert

    data = load_bdci(args.data)
    train, dev, test = (tuple(x[: args.limit] for x in data[s]) for s in ("train", "dev", "test"))
    config = BertTrainConfig(model_dir=str(encoder), max_len=128, **config_kw)
    model = train_bert(list(train[0]), train[1], list(dev[0]), dev[1], config)
    thresholds = per_label_thresholds(dev[1], model.predict_proba(dev[0]))
    pred = model.predict_proba(test[0]) >= thresholds[None, :]
    truth = test[1] > 0.5
    emit({"bench": "bdci", "device": str(model.device), "train_rows": len(train[0]),
          **training_figures(model, len(train[0])), "test_micro_f1": round(_f1(truth, pred), 4)})  # fmt: skip
    return data["train"][0] + data["test"][0]


def run_inference(args, encoder: Path, texts: list[str]) -> None:
    """An untrained head on the encoder: the cost is the encoder's, the same as a trained model's."""
    from transformers import AutoModel, AutoTokenizer

    from dagster_autotag.train.bert import BertMultiLabel, BertTrainConfig, TrainedBert
    from dagster_autotag.train.tokens import encode

    texts = (texts * (args.n_infer // max(len(texts), 1) + 1))[: args.n_infer]
    tokenizer = AutoTokenizer.from_pretrained(encoder, local_files_only=True)
    encoder_model = AutoModel.from_pretrained(encoder, local_files_only=True, dtype=torch.float32)
    model = BertMultiLabel(encoder_model, 10, 0.0).to("cuda" if torch.cuda.is_available() else "cpu")
    for max_len in (32, 128, 256):
        trained = TrainedBert(model, tokenizer, BertTrainConfig(model_dir=str(encoder), max_len=max_len))
        trained.predict_proba(texts[:256])  # warm-up (CUDA context, kernels)
        started = time.perf_counter()
        trained.predict_proba(texts)
        if trained.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        encode(tokenizer, texts, max_len)
        tokenise = time.perf_counter() - started
        emit({"bench": "inference", "device": str(trained.device), "max_len": max_len, "docs": len(texts),
              "docs_per_s": round(len(texts) / seconds, 1), "tokenisation_share": round(tokenise / seconds, 3)})  # fmt: skip


def smoke_data(root: Path) -> None:
    """THUCNews and BDCI look-alikes (the same file formats) under `root`, from a fixed pattern."""
    rng = np.random.default_rng(0)
    words = ["上市", "谍照", "油耗", "动力", "价格", "内饰", "空间", "操控", "配置", "外观"]
    (root / "thucnews").mkdir(parents=True)
    for split, n in (("train", 200), ("dev", 60), ("test", 60)):
        labels = rng.integers(0, 10, n)
        lines = [f"{words[k]}新车{''.join(rng.choice(words, 3))}\t{k}" for k in labels]
        (root / "thucnews" / f"{split}.txt").write_text("\n".join(lines), encoding="utf-8")
    (root / "bdci2018_car").mkdir()
    with (root / "bdci2018_car" / "round1.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["content_id", "content", "subject", "sentiment_value", "sentiment_word"])
        for i in range(300):
            picked = rng.choice(10, size=int(rng.integers(1, 3)), replace=False)
            text = "".join(words[k] for k in picked) + "这车开起来还行"
            for k in picked:
                writer.writerow([str(i), text, f"aspect{k}", "0", ""])


def tiny_encoder(path: Path, texts: list[str]) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = sorted({c for t in texts for c in t})
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars])}
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=288)  # fmt: skip
    BertModel(config).save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--encoder", type=Path, help="packed e5-small (bench/pack_encoder.py)")
    parser.add_argument("--data", type=Path, default=DATASETS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="rows per split (default: all)")
    parser.add_argument("--n-infer", type=int, default=100_000)
    parser.add_argument("--smoke", action="store_true", help="tiny random BERT, generated data, CPU-sized")
    args = parser.parse_args(argv)
    config_kw = {"max_epochs": args.epochs, "patience": args.epochs, "lr": 5e-5}
    if args.smoke:
        work = Path(tempfile.mkdtemp(prefix="autotag-gpu-smoke-"))
        smoke_data(work / "datasets")
        args.data, args.n_infer, args.epochs = work / "datasets", 500, 1
        texts = load_thucnews(args.data, "train", None)[0] + load_bdci(args.data)["train"][0]
        encoder = tiny_encoder(work / "encoder", texts)
        config_kw = {"max_epochs": 1, "patience": 1, "lr": 1e-3, "num_threads": 1}
    elif args.encoder is None:
        parser.error("--encoder is required (or --smoke)")
    else:
        encoder = args.encoder
    emit({"bench": "setup", "torch": torch.__version__, "cuda": torch.cuda.is_available(),
          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None})  # fmt: skip
    run_thucnews(args, encoder, config_kw)
    reviews = run_bdci(args, encoder, config_kw)
    run_inference(args, encoder, reviews)


if __name__ == "__main__":
    main()
