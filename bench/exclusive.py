"""THUCNews as an exclusive scheme through the pipeline's assets (issue #14 §3 target: sub-label
micro-F1 ≥ 0.89 with CPU kinds).

    .venv/bin/python bench/exclusive.py                       # ingest, datasets, linear, textcnn, ensemble, report
    .venv/bin/python bench/exclusive.py --stages train,report --kinds linear
    .venv/bin/python bench/exclusive.py --stages flat     # the same linear model as a multi-label scheme

All 53,462 THUCNews headlines (its train, dev and test files together: the pipeline splits) become
news items tagged under 新闻/<topic> (10 topics, one each), and the 8,290 BDCI car reviews items of
another gate (车评/<aspect>): the scheme's negatives. Landing exports over three days → raw → clean →
corpus → datasets/thucnews (exclusive: true; 80/10/10 by the pipeline's split) → models/thucnews/
<kind> (softmax sub-label models, thresholds by the precision bound) → the ensemble → the serving
choice, all with dagster.materialize in-process under --home (default .bench/exclusive/home).
Report: each champion's test split scored as the pipeline decides (shipped labels only, the argmax
under the gate): sub-label micro-F1 (gate column left out), gate F1, accuracy on the gate-positive
test items, labels shipped. Results also go to .bench/exclusive/results.json.
Stage `flat`: for comparison, the linear kind trained by the same code (train_scheme_model) on the
same dataset files with `exclusive` off (one sigmoid per topic, per-label floors, what a scheme without
`exclusive: true` gets), thresholds from dev like --linear-folds 0; .bench/exclusive/flat.json.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models as bench_models  # noqa: E402 - bench/models.py: data paths and loaders

OUT = bench_models.ROOT / ".bench" / "exclusive"
SCHEME, GATE, OTHER = "thucnews", "新闻", "车评"
ZH = {
    "finance": "财经", "realty": "房产", "stocks": "股票", "education": "教育", "science": "科技",
    "society": "社会", "politics": "时政", "sports": "体育", "game": "游戏", "entertainment": "娱乐",
}  # fmt: skip
DAYS = ["2024-07-01", "2024-07-02", "2024-07-03"]
# bench/models.py's best THUCNews TextCNN (setting 13: Tencent vectors, 20k-bucket bigram channel,
# embedding dropout 0.5; 88.83 % as one-vs-rest sigmoids)
TEXTCNN = {
    "max_len": 32, "num_filters": 256, "batch_size": 128, "ngram_buckets": 20_000, "embedding_dropout": 0.5,
    "vectors_npy": str(bench_models.VECTORS_NPY), "vectors_vocab": str(bench_models.VECTORS_VOCAB),
}  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", flush=True)


def write_landing(landing: Path) -> dict:
    from dagster_autotag_tests.corpus.bdci import read_reviews, write_landing_partition

    classes = bench_models.thucnews_classes()
    tags = [("70000", GATE, "内容标签", "70000", GATE, "1")]
    tags += [
        (str(70001 + i), ZH[c], "内容标签", f"70000,{70001 + i}", f"{GATE},{ZH[c]}", "1") for i, c in enumerate(classes)
    ]
    tags += [
        ("71000", OTHER, "内容标签", "71000", OTHER, "1"),
        ("71001", "评论", "内容标签", "71000,71001", f"{OTHER},评论", "1"),
    ]
    items = []
    for split in ("train", "dev", "test"):
        texts, labels = bench_models.load_thucnews(split)
        items += [(f"thuc-{split}-{i}", t, str(70001 + int(k))) for i, (t, k) in enumerate(zip(texts, labels))]
    reviews = read_reviews().unique("content_id", keep="first", maintain_order=True)
    items += [(f"bdci-{cid}", content.strip(), "71001") for cid, content, _ in reviews.iter_rows()]
    for d, dt in enumerate(DAYS):
        rows = [
            (itemid, text, None, tag, "news", "A", "PGC", f"{dt} 12:00:00")
            for i, (itemid, text, tag) in enumerate(items)
            if i % len(DAYS) == d
        ]
        write_landing_partition(landing, dt, {"news_pool": rows, "asr": [], "ocr": [], "tag_dim": tags})
    return {"items": len(items), "thucnews": len(items) - reviews.height, "negatives": reviews.height}


def definitions(home: Path):
    from dagster_autotag.corpus.config import parse_corpus_config
    from dagster_autotag.definitions import build_definitions
    from dagster_autotag.resources import LakeResource, LandingExportSource, MlflowResource

    os.environ["AUTOTAG_HOME"] = str(home)
    config = parse_corpus_config(
        {"schemes": {SCHEME: {"gate": [GATE], "label_level": 2, "exclusive": True}}}, source="bench/exclusive.py"
    )
    return build_definitions(
        export_source=LandingExportSource(landing_dir=str(home / "landing")),
        lake=LakeResource(home=str(home)),
        corpus_config=config,
        mlflow=MlflowResource(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"),
    )


def materialize(defs, keys: list[list[str]], run_config: dict | None = None, partition: str | None = None):
    import dagster as dg

    started = time.perf_counter()
    result = dg.materialize(
        list(defs.assets), resources=dict(defs.resources), partition_key=partition, run_config=run_config or {},
        selection=dg.AssetSelection.assets(*(dg.AssetKey(k) for k in keys)),
    )  # fmt: skip
    log(f"materialised {['/'.join(k) for k in keys]} {partition or ''} in {time.perf_counter() - started:.0f} s")
    return result


def ingest(defs) -> None:
    import dagster as dg

    for dt in DAYS:
        started = time.perf_counter()
        selection = dg.AssetSelection.groups("ingest", "clean", "corpus")
        dg.materialize(list(defs.assets), partition_key=dt, resources=dict(defs.resources), selection=selection)
        log(f"ingest/clean/corpus {dt} in {time.perf_counter() - started:.0f} s")
    materialize(defs, [["datasets", SCHEME]])


def train(defs, kinds: list[str], args) -> None:
    run_config = {
        "linear": {"threshold_folds": args.linear_folds},
        "textcnn": {**TEXTCNN, "max_epochs": args.textcnn_epochs, "patience": 2, "num_threads": args.threads},
        "ensemble": {},
    }
    for kind in kinds:
        materialize(
            defs, [["models", SCHEME, kind]], {"ops": {f"models__{SCHEME}__{kind}": {"config": run_config[kind]}}}
        )
    materialize(defs, [["models", SCHEME, "serving"]])


def report(home: Path, kinds: list[str]) -> list[dict]:
    import mlflow

    from dagster_autotag.predict.champion import read_serving_record
    from dagster_autotag.train.registry import CHAMPION, load_scheme_model, registered_model_name
    from dagster_autotag.train.scheme_model import SplitData

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    dataset = home / "lake" / "datasets" / SCHEME
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    test = SplitData.read(dataset / "test.parquet", manifest["labels"])
    rows = []
    for kind in kinds:
        model = load_scheme_model(f"models:/{registered_model_name(SCHEME, kind)}@{CHAMPION}")
        started = time.perf_counter()
        fired = model.decide(model.predict_proba(test.texts), texts=test.texts)
        seconds = time.perf_counter() - started
        truth = test.y > 0
        sub_t, sub_p = truth[:, 1:], fired[:, 1:]
        tp, predicted, gold = (sub_t & sub_p).sum(), sub_p.sum(), sub_t.sum()
        gate_tp = (truth[:, 0] & fired[:, 0]).sum()
        positives = truth[:, 0]
        row = {
            "kind": model.kind,
            "test rows": int(len(test.texts)),
            "sub-label micro-F1": round(float(2 * tp / (predicted + gold)), 4),
            "sub-label micro P / R": f"{tp / max(predicted, 1):.4f} / {tp / gold:.4f}",
            "gate F1": round(float(2 * gate_tp / (fired[:, 0].sum() + positives.sum())), 4),
            "accuracy on gate positives": round(float((sub_t & sub_p)[positives].any(axis=1).mean()), 4),
            "labels shipped": f"{int(model.thresholds.shipped[1:].sum())}/{len(manifest['labels'])}",
            "threshold source": model.thresholds.source,
            "predict test s": round(seconds, 1),
            "load1": round(os.getloadavg()[0], 2),
        }
        log(json.dumps(row, ensure_ascii=False))
        rows.append(row)
    record = read_serving_record(mlflow.MlflowClient(uri), SCHEME)
    if record is not None:
        rows.append({"serving": f"{record.kind} v{record.version}", "why": record.reason})
        log(f"serving: {record.kind} v{record.version}: {record.reason}")
    rows.append({"manifest exclusive": manifest.get("exclusive"), "rows": manifest.get("rows")})
    return rows


def sub_label_figures(model, test) -> dict:
    """The pipeline's decisions on the test split: sub-label micro P/R/F1 (gate column left out)."""
    fired = model.decide(model.predict_proba(test.texts), texts=test.texts)
    truth = test.y > 0
    sub_t, sub_p = truth[:, 1:], fired[:, 1:]
    tp, predicted, gold = (sub_t & sub_p).sum(), sub_p.sum(), sub_t.sum()
    return {
        "sub-label micro-F1": round(float(2 * tp / (predicted + gold)), 4),
        "sub-label micro P / R": f"{tp / max(predicted, 1):.4f} / {tp / gold:.4f}",
        "items with 2+ topics": int((sub_p.sum(axis=1) > 1).sum()),
        "labels shipped": int(model.thresholds.shipped[1:].sum()),
    }


def flat_baseline(home: Path, folds: int) -> dict:
    import shutil

    from dagster_autotag.train.configs import LinearConfig, TrainingOptions
    from dagster_autotag.train.scheme_model import SplitData, train_scheme_model

    dataset = home / "lake" / "datasets" / SCHEME
    flat = OUT / "flat_dataset"
    shutil.rmtree(flat, ignore_errors=True)
    flat.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (flat / f"{split}.parquet").symlink_to(dataset / f"{split}.parquet")
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    manifest["exclusive"] = {**manifest["exclusive"], "declared": False}
    (flat / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    started = time.perf_counter()
    result = train_scheme_model("linear", LinearConfig(), flat, TrainingOptions(threshold_folds=folds))
    test = SplitData.read(flat / "test.parquet", manifest["labels"])
    row = {"kind": "linear, multi-label (exclusive off)", **sub_label_figures(result.model, test)}
    row |= {"train+tune s": round(time.perf_counter() - started, 1), "load1": round(os.getloadavg()[0], 2)}
    log(json.dumps(row, ensure_ascii=False))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=OUT / "home")
    parser.add_argument("--stages", default="ingest,train,report")
    parser.add_argument("--kinds", default="linear,textcnn,ensemble")
    parser.add_argument("--linear-folds", type=int, default=5, help="out-of-fold tuning folds of linear")
    parser.add_argument("--textcnn-epochs", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    stages, kinds = args.stages.split(","), args.kinds.split(",")
    args.home.mkdir(parents=True, exist_ok=True)
    defs = definitions(args.home)
    if "ingest" in stages:
        log(f"landing: {write_landing(args.home / 'landing')}")
        ingest(defs)
    if "train" in stages:
        train(defs, kinds, args)
    if "flat" in stages:
        OUT.mkdir(parents=True, exist_ok=True)
        row = flat_baseline(args.home, args.linear_folds)
        (OUT / "flat.json").write_text(json.dumps(row, ensure_ascii=False, indent=1), encoding="utf-8")
    if "report" in stages:
        rows = report(args.home, kinds)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "results.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
