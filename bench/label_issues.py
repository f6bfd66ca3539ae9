"""Does leaving cleanlab's likely tag errors out of training help? BDCI car reviews, linear model.

    .venv/bin/python bench/label_issues.py          # ~10 s on the 2-core box

bench/models.py's BDCI split (80/20 by content_id, seed 0; dev = 10 % of train). Out-of-fold
probabilities of the linear model (5 folds over train) feed quality/label_issues.py's `flag_rows`
(cleanlab); the linear model is then trained on train as is, without the `confident` flags, and
without every flagged row. Thresholds tuned on dev for F1, as in bench/models.py; micro-F1 on test.
Results also go to .bench/label_issues/results.json.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models as bench_models  # noqa: E402 - bench/models.py: the BDCI split

OUT = bench_models.ROOT / ".bench" / "label_issues"


def main() -> None:
    from dagster_autotag.quality.label_issues import flag_rows, out_of_fold_probs
    from dagster_autotag.train.configs import LinearConfig
    from dagster_autotag.train.evaluate import evaluate
    from dagster_autotag.train.linear import LinearModel
    from dagster_autotag.train.thresholds import decide, tune_thresholds

    data = bench_models.load_bdci()
    texts, y = data["train"]
    config = LinearConfig(ngram_range=(1, 2))  # bench/models.py's best linear setting
    started = time.perf_counter()
    flags = flag_rows(y, out_of_fold_probs(texts, y, 5, config))
    seconds = {"out-of-fold probabilities + cleanlab": round(time.perf_counter() - started, 1)}
    confident = np.flatnonzero(flags.confident)
    variants = {
        "train as is": np.array([], dtype=int),
        "without confident flags": confident,
        "without every flag": flags.rows,
    }
    rows = []
    for name, drop in variants.items():
        keep = np.setdiff1d(np.arange(len(texts)), drop)
        model = LinearModel(config).fit([texts[i] for i in keep], y[keep])
        th = tune_thresholds(data["dev"][1], model.predict_proba(data["dev"][0]), mode="f1")
        test_x, test_y = data["test"]
        probs = model.predict_proba(test_x)
        summary = evaluate(test_y, decide(probs, th, only_shipped=False), probs, data["names"], test_x).summary
        row = {
            "train": name,
            "rows dropped": int(len(drop)),
            "micro_f1": round(summary["micro_f1"], 4),
            "macro_f1": round(summary["macro_f1"], 4),
        }
        print(row, flush=True)
        rows.append(row)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps({"rows": rows, "seconds": seconds}, ensure_ascii=False, indent=1))
    print(seconds)


if __name__ == "__main__":
    main()
