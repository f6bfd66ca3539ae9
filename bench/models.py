"""Model benchmark on real Chinese text: accuracy/F1 of the linear baseline, TextCNN and BERT, plus speed.

    .venv/bin/python bench/models.py                      # everything: 1-2 h on the shared 2-core box
    .venv/bin/python bench/models.py --only thucnews      # or bdci, speed; repeatable: --only bdci --only speed
    .venv/bin/python bench/models.py --quick              # small subsets, one setting each: a smoke run
    # sections (and models, --models linear,textcnn,bert) can run as parallel single-thread processes;
    # BDCI probabilities are saved, so the ensemble can be redone without retraining:
    .venv/bin/python bench/models.py --only bdci --models textcnn,bert --reuse-probs

1. THUCNews headlines (10 classes, one-hot; accuracy = argmax of predict_proba on the 10k test set):
   linear TF-IDF+LR, TextCNN-char settings by index (random init or the Tencent char vectors, static or
   fine-tuned, with or without the hashed bigram channel and embedding dropout: --textcnn-settings),
   and BERT (multilingual-e5-small, 12 layers) fine-tuned on a train subset (--bert-train-limit).
2. BDCI 2018 car reviews (10 aspects, multi-label): 80/20 split by content_id (seed 0, the split of
   dagster_autotag_tests/train/test_linear_bdci.py), dev = 10% of train for early stopping and
   thresholds; micro/macro-F1 on test with dev-tuned thresholds (mode "f1") and with a plain 0.5 cut;
   mean ensembles of every combination of two or more of the models run or reused (linear, each TextCNN
   setting, BERT), and agreement of TextCNN and BERT (both above their own thresholds).
3. Speed: TextCNN training samples/s and s/epoch (default config), TextCNN inference docs/s
   (batch 256/1024 × threads 1/2), e5-small encoder inference docs/s at max_len 64.

The encoder comes from ../shared/tools/make_pretrained_encoder.sh (built into .bench/e5-small when
missing). For training, a vocabulary-pruned copy is used (.bench/e5-small-pruned): only the
sentencepiece pieces that the benchmark texts use are kept (plus the specials), which keeps the
tokenisation of these texts identical (checked on every text) and the network identical, but cuts
the 250k×384 word-embedding matrix — whose dense gradient and AdamW update otherwise take ~2/3 of
each CPU training step — to a few tens of thousands of rows.

Seeds are fixed (splits, subsets, torch, numpy), so a rerun reproduces the figures up to CPU
floating-point non-determinism. Results also go to .bench/models/results.json.
"""

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
THUC = SHARED / "datasets" / "thucnews"
BDCI_CSV = SHARED / "datasets" / "bdci2018_car" / "round1.csv"
VECTORS_NPY = SHARED / "datasets" / "char_vectors" / "tencent_char_200d.npy"
VECTORS_VOCAB = SHARED / "datasets" / "char_vectors" / "tencent_char_200d.vocab.txt"
ENCODER = ROOT / ".bench" / "e5-small"
PRUNED = ROOT / ".bench" / "e5-small-pruned"
OUT = ROOT / ".bench" / "models"
PROBS = OUT / "probs"  # BDCI dev/test probabilities per model, for --reuse-probs (ensemble without retraining)
TARGETS = {"thucnews_textcnn_acc": 0.89, "thucnews_bert_acc": 0.91, "bdci_best_micro_f1": 0.88}

ROWS: list[dict] = []
# Training/evaluation threads (--threads). 1 by default: on the shared 2-core box, under a load of 4-8,
# two OpenMP threads mostly wait for each other (measured: TextCNN training 230 vs 90 samples/s,
# BERT 9-12 vs 2-4 samples/s with 1 vs 2 threads). The speed section sweeps threads itself.
THREADS = 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def record(section: str, model: str, setting: str, **figures) -> None:
    row = {"section": section, "model": model, "setting": setting, "load1": round(os.getloadavg()[0], 2), **figures}
    ROWS.append(row)
    log(f"{section} | {model} | {setting} | " + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items()))


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------- data


def load_thucnews(split: str) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for line in (THUC / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        text, label = line.rsplit("\t", 1)
        texts.append(text)
        labels.append(int(label))
    return texts, np.asarray(labels)


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.zeros((len(labels), n), dtype=np.float32)
    y[np.arange(len(labels)), labels] = 1.0
    return y


def thucnews_classes() -> list[str]:
    return [c for c in (THUC / "class.txt").read_text(encoding="utf-8").splitlines() if c.strip()]


def load_bdci() -> dict:
    """train/dev/test texts and multi-hot y: the 80/20 content_id split with seed 0, dev = the first
    10% of the (already shuffled) train part."""
    import polars as pl

    from dagster_autotag.train.targets import label_matrix

    reviews = pl.read_csv(BDCI_CSV, infer_schema=False, columns=["content_id", "content", "subject"])
    items = reviews.group_by("content_id", maintain_order=True).agg(
        pl.col("content").first(), pl.col("subject").unique().sort().alias("labels")
    )
    names = sorted(reviews["subject"].unique().to_list())
    order = np.random.default_rng(0).permutation(items.height)
    cut = int(0.8 * items.height)
    n_dev = int(0.1 * cut)
    parts = {"dev": order[:n_dev], "train": order[n_dev:cut], "test": order[cut:]}
    data: dict = {"names": names}
    for name, idx in parts.items():
        part = items[idx]
        data[name] = (part["content"].to_list(), label_matrix(part["labels"], names))
    return data


def joined_reviews(reviews: list[str], min_chars: int = 300) -> list[str]:
    """Consecutive reviews joined to ≥ min_chars characters. BDCI reviews are short (most fit in 64
    tokens): speed benches time these, so that every text fills max_len and "at 128" means 128 tokens."""
    joined, text = [], ""
    for review in reviews:
        text += review
        if len(text) >= min_chars:
            joined.append(text)
            text = ""
    return joined


# ---------------------------------------------------------------- pruned encoder


def ensure_encoder() -> Path:
    if not (ENCODER / "model.safetensors").is_file():
        import subprocess

        log(f"building {ENCODER}")
        tool = SHARED / "tools" / "make_pretrained_encoder.sh"
        # absolute interpreter path: the tool runs it from inside a temporary directory
        subprocess.run(["bash", str(tool), str(ENCODER), str(Path(sys.executable).absolute())], check=True)
    return ENCODER


def pruned_encoder(texts: list[str]) -> Path:
    """A copy of the encoder whose vocabulary holds only the pieces `texts` tokenise into (and the
    specials). Unigram segmentation picks the best-scoring path; dropping pieces that are on no
    chosen path leaves every chosen path available and best, so these texts tokenise the same —
    checked on every text by pack_encoder.pack. Rebuilt when the text set changes."""
    import hashlib

    from pack_encoder import pack  # bench/pack_encoder.py: the pruning and its tokenisation check

    src = ensure_encoder()
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    if (PRUNED / "texts.sha").is_file() and (PRUNED / "texts.sha").read_text() == digest:
        return PRUNED
    facts = pack(src, PRUNED, texts, fp16=False)
    (PRUNED / "texts.sha").write_text(digest)
    log(f"pruned encoder: {facts['pieces_kept']} of {facts['pieces']} pieces, {facts['seconds']:.0f}s")
    return PRUNED


def pruned_for_all() -> Path:
    """One pruned encoder for both data sets (all their splits), so it is built once."""
    texts = []
    for split in ("train", "dev", "test"):
        texts += load_thucnews(split)[0]
    return pruned_encoder(texts + _bdci_texts())


# ---------------------------------------------------------------- models


def textcnn_config(**overrides):
    from dagster_autotag.train.textcnn import TextCNNConfig

    base = {"tokenizer": "char", "dropout": 0.5, "lr": 1e-3, "seed": 0, "num_threads": THREADS}
    return TextCNNConfig(**(base | overrides))


def vectors() -> dict:
    return {"vectors_npy": str(VECTORS_NPY), "vectors_vocab": str(VECTORS_VOCAB)}


def fit_textcnn(train, dev, config, label_names=None):
    from dagster_autotag.train.textcnn import train_textcnn

    started = time.perf_counter()
    model = train_textcnn(
        train[0],
        train[1],
        dev[0],
        dev[1],
        config,
        on_epoch=lambda e, m: log(f"  epoch {e}: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items())),
        label_names=label_names,
    )
    wall = time.perf_counter() - started
    seconds = [h["seconds"] for h in model.history]
    info = {
        "epochs_run": len(model.history),
        "best_epoch": model.best_epoch,
        "train_wall_s": round(wall, 1),
        "s_per_epoch": round(float(np.mean(seconds)), 1),
    }
    if model.embedding_coverage is not None:
        info["vector_coverage"] = round(model.embedding_coverage, 4)
    return model, info


def fit_bert(train, dev, max_len, epochs, n_labels_pos_cap):
    from dagster_autotag.train.bert import BertTrainConfig, train_bert

    config = BertTrainConfig(
        model_dir=str(PRUNED),
        max_len=max_len,
        batch_size=32,
        lr=5e-5,
        head_lr=1e-3,
        max_epochs=epochs,
        patience=1,
        pos_weight_cap=n_labels_pos_cap,
        seed=0,
        num_threads=THREADS,
    )
    started = time.perf_counter()
    model = train_bert(
        list(train[0]),
        train[1],
        list(dev[0]),
        dev[1],
        config,
        on_epoch=lambda e, m: log(f"  bert epoch {e}: {m} ({time.perf_counter() - started:.0f}s so far)"),
    )
    wall = time.perf_counter() - started
    return model, {"train_wall_s": round(wall, 1), "epochs_run": len(model.history)}


def timed_predict(model, texts, **kw) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    probs = model.predict_proba(texts, **kw)
    return probs, len(texts) / (time.perf_counter() - started)


# ---------------------------------------------------------------- 1. THUCNews


def bench_thucnews(args) -> None:
    import torch

    from dagster_autotag.train.linear import LinearConfig, LinearModel

    classes = thucnews_classes()
    n = len(classes)
    (tr_x, tr_l), (dv_x, dv_l), (te_x, te_l) = (load_thucnews(s) for s in ("train", "dev", "test"))
    if args.quick:
        tr_x, tr_l, dv_x, dv_l, te_x, te_l = (
            tr_x[:4000],
            tr_l[:4000],
            dv_x[:1000],
            dv_l[:1000],
            te_x[:2000],
            te_l[:2000],
        )
    train, dev = (tr_x, one_hot(tr_l, n)), (dv_x, one_hot(dv_l, n))
    log(f"THUCNews: train {len(tr_x)}, dev {len(dv_x)}, test {len(te_x)}, {n} classes")

    def acc(probs: np.ndarray) -> float:
        return float((probs.argmax(axis=1) == te_l).mean())

    if "linear" in args.models:
        started = time.perf_counter()
        linear = LinearModel(LinearConfig()).fit(*train)
        fit_s = time.perf_counter() - started
        acc_linear = acc(linear.predict_proba(te_x))
        record("thucnews", "linear", "tfidf char_wb 1-3 + LR C=4", test_acc=acc_linear, fit_s=round(fit_s, 1))

    # single-label task: pos_weight off (cap 1); early stopping on dev micro-F1 at 0.5
    common = {"max_len": 32, "num_filters": 256, "batch_size": 128, "pos_weight_cap": 1.0}
    common |= {"max_epochs": args.textcnn_epochs, "patience": args.textcnn_patience}
    settings = [
        ("random init", "emb128 k(2,3,4) f256", {"embed_dim": 128, "kernel_sizes": (2, 3, 4)}),
        ("tencent vectors", "emb200 k(2,3,4) f256", {"kernel_sizes": (2, 3, 4), **vectors()}),
        ("tencent vectors", "emb200 k(1,2,3,4) f256", {"kernel_sizes": (1, 2, 3, 4), **vectors()}),
        ("random init", "emb200 k(1,2,3,4) f256", {"embed_dim": 200, "kernel_sizes": (1, 2, 3, 4)}),
        ("tencent vectors", "emb200 k(2,3,4) f256 static", {"freeze_embeddings": True, **vectors()}),
        ("tencent vectors", "emb200 k(2,3,4) f256 emb-lr 1e-4", {"embedding_lr": 1e-4, **vectors()}),
        (
            "tencent vectors",
            "emb200 k(2,3,4) f256 emb-lr 1e-4 wd 0.05",
            {"embedding_lr": 1e-4, "weight_decay": 0.05, **vectors()},
        ),
        ("tencent vectors", "emb200 k(2,3,4) f256 bigrams 200k", {"ngram_buckets": 200_000, **vectors()}),
        ("random init", "emb200 k(2,3,4) f256 bigrams 200k", {"embed_dim": 200, "ngram_buckets": 200_000}),
        (
            "tencent vectors",
            "emb200 k(2,3,4) f256 bigrams 200k emb-dropout 0.3",
            {"ngram_buckets": 200_000, "embedding_dropout": 0.3, **vectors()},
        ),
        (
            "tencent vectors",
            "emb200 k(2,3,4) f256 bigrams 200k emb-dropout 0.5",
            {"ngram_buckets": 200_000, "embedding_dropout": 0.5, **vectors()},
        ),
        (
            "tencent vectors",
            "emb200 k(2,3,4) f256 bigrams 200k emb-dropout 0.3 lr-decay 0.7",
            {"ngram_buckets": 200_000, "embedding_dropout": 0.3, "lr_decay": 0.7, **vectors()},
        ),
        (
            "tencent vectors",
            "emb200 k(1,2,3,4) f256 bigrams 200k emb-dropout 0.5",
            {"kernel_sizes": (1, 2, 3, 4), "ngram_buckets": 200_000, "embedding_dropout": 0.5, **vectors()},
        ),
        (  # small enough for the fused inference tables
            "tencent vectors",
            "emb200 k(2,3,4) f256 bigrams 20k emb-dropout 0.5",
            {"ngram_buckets": 20_000, "embedding_dropout": 0.5, **vectors()},
        ),
    ]
    if args.quick:
        settings = settings[1:2]
        common["max_epochs"] = 2
    picked = [settings[int(i)] for i in args.textcnn_settings.split(",")] if not args.quick else settings
    for init, desc, extra in picked if "textcnn" in args.models else []:
        log(f"TextCNN {init} {desc}")
        model, info = fit_textcnn(train, dev, textcnn_config(**common, **extra), label_names=classes)
        probs, dps = timed_predict(model, te_x)
        setting = f"{desc} maxlen32 bs128 lr1e-3 do0.5"
        info["infer_docs_per_s"] = round(dps)  # test set, batch 1024, --threads; first call (fused tables built)
        record("thucnews", f"textcnn-char {init}", setting, test_acc=acc(probs), **info)

    if args.bert_train_limit == 0 or "bert" not in args.models:
        log("BERT skipped")
        return
    pruned_for_all()
    rng = np.random.default_rng(0)
    sub = np.sort(rng.permutation(len(tr_x))[: args.bert_train_limit])
    dsub = np.sort(rng.permutation(len(dv_x))[: args.bert_dev_limit])
    tsub = (
        np.arange(len(te_x))
        if args.bert_test_limit is None
        else np.sort(rng.permutation(len(te_x))[: args.bert_test_limit])
    )
    b_train = ([tr_x[i] for i in sub], train[1][sub])
    b_dev = ([dv_x[i] for i in dsub], dev[1][dsub])
    log(f"BERT: train subset {len(sub)}, dev subset {len(dsub)}, epochs {args.bert_epochs}, test {len(tsub)}")
    model, info = fit_bert(b_train, b_dev, 32, args.bert_epochs, 1.0)
    samples = len(sub) * info["epochs_run"]
    torch.set_num_threads(THREADS)
    probs, dps = timed_predict(model, [te_x[i] for i in tsub], batch_size=128)
    accuracy = float((probs.argmax(axis=1) == te_l[tsub]).mean())
    record(
        "thucnews",
        "bert e5-small",
        f"train {len(sub)} x {info['epochs_run']} ep, maxlen32 bs32 lr5e-5/head1e-3, dev {len(dsub)}",
        test_acc=accuracy,
        test_n=len(tsub),
        train_samples_per_s=round(samples / info["train_wall_s"], 1),
        infer_docs_per_s=round(dps, 1),
        **info,
    )


def _bdci_texts() -> list[str]:
    data = load_bdci()
    return data["train"][0] + data["dev"][0] + data["test"][0]


# ---------------------------------------------------------------- 2. BDCI


def multilabel_figures(name: str, setting: str, dev_probs, test_probs, data, extra: dict | None = None):
    from dagster_autotag.train.evaluate import evaluate
    from dagster_autotag.train.thresholds import decide, tune_thresholds

    te_x, te_y = data["test"]
    names = data["names"]
    th = tune_thresholds(data["dev"][1], dev_probs, mode="f1")
    tuned = evaluate(te_y, decide(test_probs, th, only_shipped=False), test_probs, names, te_x).summary
    # dev with its own tuned thresholds (optimistic): the figure to choose a model or ensemble by
    dev = evaluate(data["dev"][1], decide(dev_probs, th, only_shipped=False), dev_probs, names, data["dev"][0]).summary
    plain = evaluate(te_y, test_probs >= 0.5, test_probs, names, te_x).summary
    record(
        "bdci",
        name,
        setting,
        micro_f1_tuned=tuned["micro_f1"],
        macro_f1_tuned=tuned["macro_f1"],
        micro_p_tuned=tuned["micro_precision"],
        micro_r_tuned=tuned["micro_recall"],
        micro_f1_at_0_5=plain["micro_f1"],
        macro_f1_at_0_5=plain["macro_f1"],
        dev_micro_f1_tuned=dev["micro_f1"],
        **(extra or {}),
    )
    return th


def bench_bdci(args) -> None:
    from dagster_autotag.train.linear import LinearConfig, LinearModel
    from dagster_autotag.train.thresholds import decide

    data = load_bdci()
    if args.quick:
        data["train"] = (data["train"][0][:2000], data["train"][1][:2000])
    names = data["names"]
    log(
        f"BDCI: train {len(data['train'][0])}, dev {len(data['dev'][0])}, test {len(data['test'][0])}, {len(names)} aspects"
    )
    dev_x, test_x = data["dev"][0], data["test"][0]

    probs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    thresholds = {}
    # (key, description, config): the production default, and the (1, 2) n-grams linear.py mentions
    linear_settings = [
        ("linear", "tfidf char_wb 1-3 + LR C=4 balanced", LinearConfig()),
        ("linear-12", "tfidf char_wb 1-2 + LR C=4 balanced", LinearConfig(ngram_range=(1, 2))),
    ]
    for key, desc, linear_config in linear_settings:
        if "linear" in args.models and not (args.reuse_probs and (PROBS / f"bdci_{key}.npz").is_file()):
            linear = LinearModel(linear_config).fit(*data["train"])
            probs[key] = (linear.predict_proba(dev_x), linear.predict_proba(test_x))
            _save_probs(key, probs[key])
        elif args.reuse_probs and (PROBS / f"bdci_{key}.npz").is_file():
            probs[key] = _load_probs(key)
        if key in probs:
            thresholds[key] = multilabel_figures(key, desc, *probs[key], data)
    # (key for saved probs and ensembles, description, config changes)
    cnn_settings = [
        ("textcnn", "emb200 k(2,3,4) f256 maxlen128 bs64", {"kernel_sizes": (2, 3, 4)}),
        ("textcnn-k1234", "emb200 k(1,2,3,4) f256 maxlen128 bs64", {"kernel_sizes": (1, 2, 3, 4)}),
        ("textcnn-bigram", "emb200 k(2,3,4) f256 maxlen128 bs64 bigrams 200k", {"ngram_buckets": 200_000}),
        (
            "textcnn-bigram-do5",
            "emb200 k(2,3,4) f256 maxlen128 bs64 bigrams 200k emb-dropout 0.5",
            {"ngram_buckets": 200_000, "embedding_dropout": 0.5},
        ),
    ]
    picked = [cnn_settings[int(i)] for i in args.bdci_textcnn_settings.split(",") if i]
    if args.quick:
        picked = cnn_settings[:1]
    for key, desc, extra in picked if "textcnn" in args.models else []:
        log(f"BDCI TextCNN {desc}")
        config = textcnn_config(
            max_len=128,
            num_filters=256,
            batch_size=64,
            max_epochs=2 if args.quick else args.bdci_textcnn_epochs,
            patience=2,
            **vectors(),
            **extra,
        )
        if args.reuse_probs and (PROBS / f"bdci_{key}.npz").is_file():
            pair, info = _load_probs(key), {"reused": "probs from " + str(PROBS / f"bdci_{key}.npz")}
        else:
            model, info = fit_textcnn(data["train"], data["dev"], config, label_names=names)
            pair = (model.predict_proba(dev_x), model.predict_proba(test_x))
            _save_probs(key, pair)
        probs[key] = pair
        thresholds[key] = multilabel_figures(f"{key} tencent vectors", desc, *pair, data, info)

    if args.bdci_bert_epochs > 0 and "bert" in args.models and args.reuse_probs and (PROBS / "bdci_bert.npz").is_file():
        probs["bert"] = _load_probs("bert")
        setting = f"probs reused from {PROBS / 'bdci_bert.npz'}"
        thresholds["bert"] = multilabel_figures("bert e5-small", setting, *probs["bert"], data)
    elif args.bdci_bert_epochs > 0 and "bert" in args.models:
        pruned_for_all()
        limit = args.bdci_bert_train_limit or len(data["train"][0])
        train = (data["train"][0][:limit], data["train"][1][:limit])
        log(f"BDCI BERT: train {len(train[0])}, {args.bdci_bert_epochs} epochs, max_len {args.bdci_bert_max_len}")
        model, info = fit_bert(train, data["dev"], args.bdci_bert_max_len, args.bdci_bert_epochs, 10.0)
        pair = (model.predict_proba(dev_x), model.predict_proba(test_x))
        info["train_samples_per_s"] = round(len(train[0]) * info["epochs_run"] / info["train_wall_s"], 1)
        setting = (
            f"train {len(train[0])} x {info['epochs_run']} ep, maxlen{args.bdci_bert_max_len} bs32 lr5e-5/head1e-3"
        )
        probs["bert"] = pair
        _save_probs("bert", pair)
        thresholds["bert"] = multilabel_figures("bert e5-small", setting, *pair, data, info)

    # every mean ensemble of two or more models (thresholds tuned on dev for the mean, like any model)
    for size in range(2, len(probs) + 1):
        for members in itertools.combinations(sorted(probs), size):
            mean = tuple(np.mean([probs[m][i] for m in members], axis=0) for i in (0, 1))
            name = f"ensemble mean({', '.join(members)})"
            multilabel_figures(name, "thresholds tuned on dev for the mean", *mean, data)
    if "textcnn" in probs and "bert" in probs:
        both = decide(probs["textcnn"][1], thresholds["textcnn"], only_shipped=False) & decide(
            probs["bert"][1], thresholds["bert"], only_shipped=False
        )
        gold = data["test"][1] > 0
        tp, pred, true = float((both & gold).sum()), float(both.sum()), float(gold.sum())
        p, r = tp / pred if pred else 0.0, tp / true
        record(
            "bdci",
            "agreement textcnn & bert",
            "both above their own dev-tuned thresholds",
            micro_p=p,
            micro_r=r,
            micro_f1=2 * p * r / (p + r) if p + r else 0.0,
        )


def _save_probs(model: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    PROBS.mkdir(parents=True, exist_ok=True)
    np.savez(PROBS / f"bdci_{model}.npz", dev=pair[0], test=pair[1])


def _load_probs(model: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(PROBS / f"bdci_{model}.npz") as saved:
        return saved["dev"], saved["test"]


# ---------------------------------------------------------------- 3. speed


def bench_speed(args) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    classes = thucnews_classes()
    tr_x, tr_l = load_thucnews("train")
    dv_x, dv_l = load_thucnews("dev")
    te_x, _ = load_thucnews("test")
    if args.quick:
        tr_x, tr_l = tr_x[:4000], tr_l[:4000]
    # default-size char model (TextCNNConfig defaults: emb 128, k(2,3,4), 128 filters, batch 64, max_len 128);
    # one epoch on the full train set, a 200-text dev so the epoch time is the training pass
    small_dev = (dv_x[:200], one_hot(dv_l[:200], 10))
    for threads in sorted({THREADS, 2}, key=lambda t: t != THREADS):
        # the --threads run is a full epoch and gives the model timed below; the other one 8,000 texts
        n = len(tr_x) if threads == THREADS else min(8000, len(tr_x))
        config = textcnn_config(max_epochs=1, num_threads=threads)
        trained, info = fit_textcnn((tr_x[:n], one_hot(tr_l[:n], 10)), small_dev, config, classes)
        per_s = n / info["s_per_epoch"]
        record(
            "speed",
            "textcnn train",
            f"TextCNNConfig() defaults but threads {threads}, {n} THUCNews train texts, 1 epoch",
            samples_per_s=round(per_s, 1),
            s_per_epoch_full_train=round(len(tr_x) / per_s, 1),
        )
        if threads == THREADS:
            model = trained

    texts = [t[:64] for t in (te_x + dv_x)][:20_000]  # THUCNews test + dev headlines
    bdci = _bdci_texts()
    reviews = [t[:64] for t in (bdci * 3)[:20_000]]  # BDCI reviews cut to 64 chars (repeated to 20k)
    for label, sample in (("headlines", texts), ("BDCI reviews cut to 64 chars", reviews)):
        mean_len = float(np.mean([len(t) for t in sample]))
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for batch in (256, 1024):
                model.predict_proba(sample[:2000], batch_size=batch)  # warm-up (builds the fused tables once)
                runs = [timed_predict(model, sample, batch_size=batch)[1] for _ in range(3)]
                record(
                    "speed",
                    "textcnn inference",
                    f"{len(sample)} {label} (mean {mean_len:.1f} chars) batch {batch} threads {threads}",
                    docs_per_s=round(float(np.median(runs)), 0),
                    runs=[round(r) for r in runs],
                )

    # The THUCNews bigram architecture (emb 200, k(2,3,4) x 256) on the same vocabulary, untrained: the
    # speed does not depend on the weights. 200k buckets exceed the fused-table cap (conv1d path), 20k not.
    from dagster_autotag.train.textcnn import FUSED_MAX_BYTES, TextCNNConfig, TrainedTextCNN, _build_model

    for buckets in (200_000, 20_000):
        config = TextCNNConfig(max_len=32, embed_dim=200, num_filters=256, ngram_buckets=buckets)
        net = _build_model(config, len(model.vocab), len(classes), 200).eval()
        bigram = TrainedTextCNN(net, model.vocab, config, classes)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            bigram.predict_proba(texts[:2000])  # warm-up
            runs = [timed_predict(bigram, texts)[1] for _ in range(3)]
            fused = net.fused_bytes() <= FUSED_MAX_BYTES
            record(
                "speed",
                "textcnn inference, bigram model",
                f"emb200 k(2,3,4) f256 + {buckets} buckets ({'fused' if fused else 'conv1d'}), {len(texts)} "
                f"headlines batch 1024 threads {threads}",
                docs_per_s=round(float(np.median(runs)), 0),
                runs=[round(r) for r in runs],
            )

    src = ensure_encoder()
    tok = AutoTokenizer.from_pretrained(src, local_files_only=True)
    encoder = AutoModel.from_pretrained(src, local_files_only=True).eval()
    cases = [(t, "THUCNews headlines", texts[:1024]) for t in (1, 2)] + [
        (t, "BDCI reviews", bdci[:512]) for t in (1, 2)
    ]
    for threads, label, sample in cases:
        torch.set_num_threads(threads)
        if args.quick:
            sample = sample[:128]
        with torch.inference_mode():
            enc = tok(sample[:64], max_length=64, truncation=True, padding=True, return_tensors="pt")
            encoder(**enc)  # warm-up
            started, tokens = time.perf_counter(), 0
            for start in range(0, len(sample), 64):
                enc = tok(sample[start : start + 64], max_length=64, truncation=True, padding=True, return_tensors="pt")
                tokens += int(enc["attention_mask"].sum())
                encoder(**enc)
            seconds = time.perf_counter() - started
        record(
            "speed",
            "e5-small encoder inference",
            f"{len(sample)} {label}, max_len 64, batch 64 (in given order), threads {threads}, inference_mode",
            docs_per_s=round(len(sample) / seconds, 1),
            mean_tokens=round(tokens / len(sample), 1),
        )


# ---------------------------------------------------------------- main


def print_table() -> None:
    print("\n| section | model | setting | figures | load1 |\n|---|---|---|---|---|")
    for row in ROWS:
        figures = {k: v for k, v in row.items() if k not in ("section", "model", "setting", "load1")}
        text = ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        print(f"| {row['section']} | {row['model']} | {row['setting']} | {text} | {row['load1']} |")
    print("\ntargets:", ", ".join(f"{k} >= {v}" for k, v in TARGETS.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=["thucnews", "bdci", "speed"])
    parser.add_argument("--quick", action="store_true", help="small subsets and one setting each (smoke run)")
    parser.add_argument("--models", default="linear,textcnn,bert", help="comma list for the accuracy sections")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training and evaluation")
    parser.add_argument(
        "--textcnn-settings",
        default="0,1",
        help="THUCNews TextCNN settings to run, indices into the list (0-13; 7-13 = bigram channel)",
    )
    parser.add_argument("--textcnn-epochs", type=int, default=5)
    parser.add_argument("--textcnn-patience", type=int, default=1)
    parser.add_argument("--bdci-textcnn-epochs", type=int, default=6)
    parser.add_argument(
        "--bdci-textcnn-settings",
        default="0",
        help="BDCI TextCNN settings, indices (0-3: kernels 2-4, kernels 1-4, kernels 2-4 + bigram channel, + emb dropout)",
    )
    parser.add_argument("--bert-train-limit", type=int, default=6000, help="THUCNews BERT train subset; 0 skips")
    parser.add_argument("--bert-epochs", type=int, default=1)
    parser.add_argument("--bert-dev-limit", type=int, default=500, help="dev subset for BERT early stopping")
    parser.add_argument("--bert-test-limit", type=int, default=None, help="default: the whole test set")
    parser.add_argument("--bdci-bert-epochs", type=int, default=1, help="0 skips BERT (and the ensemble) on BDCI")
    parser.add_argument("--bdci-bert-max-len", type=int, default=64)
    parser.add_argument("--bdci-bert-train-limit", type=int, default=3500)
    parser.add_argument(
        "--reuse-probs", action="store_true", help="BDCI: use saved TextCNN/BERT probabilities where present"
    )
    args = parser.parse_args()
    args.models = set(args.models.split(","))
    global THREADS
    THREADS = args.threads
    if args.quick:
        args.bert_train_limit = min(args.bert_train_limit, 256)
        args.bert_dev_limit, args.bert_test_limit = 128, 256
        args.bdci_bert_epochs = min(args.bdci_bert_epochs, 1)
        args.bdci_bert_train_limit = 256
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sections = args.only or ["thucnews", "bdci", "speed"]
    log(f"sections {sections}, args {vars(args)}, {os.cpu_count()} CPUs")
    import torch

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    try:
        for section in sections:
            {"thucnews": bench_thucnews, "bdci": bench_bdci, "speed": bench_speed}[section](args)
    finally:
        print_table()
        log(f"total {time.perf_counter() - started:.0f}s")
        OUT.mkdir(parents=True, exist_ok=True)
        path = OUT / "results.json"
        previous = json.loads(path.read_text()) if path.is_file() else []
        run = {"args": vars(args) | {"models": sorted(args.models)}, "rows": ROWS}
        path.write_text(json.dumps(previous + [run], ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
