"""Peak memory of BERT batch inference against the size of the day (issue #15, part 2).

    .venv/bin/python bench/bert_memory.py [--sizes 10000,30000,100000] [--pin-mmap-threshold]

For each size, a fresh process builds a tiny random BERT (hidden 32, 1 layer), generates that many
review-like texts (20–300 characters) and scores them with `TrainedBert.predict_proba` (texts sorted
by length, tokenised a chunk at a time ahead of the model). Reports the peak RSS of the process
(ru_maxrss), the RSS once the texts exist (before scoring), and what scoring added on top.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, {root!r})
from dagster_autotag_tests.train.tiny_bert import tiny_bert_dir
from dagster_autotag.train.bert import BertMultiLabel, BertTrainConfig, TrainedBert
from transformers import AutoModel, AutoTokenizer

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

n = int(sys.argv[1])
rng = np.random.default_rng(0)
alphabet = list("这款新车的外观内饰动力配置油耗空间操控价格谍照上市值得关注一下吧")
model_dir = tiny_bert_dir(Path(tempfile.mkdtemp()) / "tiny", ["".join(alphabet)], hidden=32, layers=1)
model = BertMultiLabel(AutoModel.from_pretrained(model_dir), 10, 0.0)
trained = TrainedBert(model, AutoTokenizer.from_pretrained(model_dir), BertTrainConfig(model_dir=str(model_dir), max_len=128))
trained.predict_proba(["热身"] * 8)
texts = ["".join(rng.choice(alphabet, int(k))) for k in rng.integers(20, 300, n)]
before = rss_mb()
probs = trained.predict_proba(texts)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"items": n, "rss_with_texts_mb": round(before, 1), "peak_rss_mb": round(peak, 1),
                   "scoring_added_mb": round(peak - before, 1), "probs_mb": round(probs.nbytes / 2**20, 1)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,30000,100000")
    # glibc raises its mmap threshold as ever wider batches are freed, then serves them from a heap
    # that fragments; a fixed threshold (what the prediction job's environment can set) avoids that
    parser.add_argument("--pin-mmap-threshold", action="store_true", help="MALLOC_MMAP_THRESHOLD_=131072")
    args = parser.parse_args()
    env = {**os.environ, **({"MALLOC_MMAP_THRESHOLD_": "131072"} if args.pin_mmap_threshold else {})}
    root = str(Path(__file__).resolve().parents[1])
    rows = []
    for n in args.sizes.split(","):
        out = subprocess.run(
            [sys.executable, "-c", CHILD.format(root=root), n], capture_output=True, text=True, env=env
        )
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    first, last = rows[0], rows[-1]
    print(json.dumps({"peak_growth": round(last["peak_rss_mb"] / first["peak_rss_mb"] - 1, 3),
                      "scoring_growth_mb": round(last["scoring_added_mb"] - first["scoring_added_mb"], 1)}))  # fmt: skip


if __name__ == "__main__":
    main()
