"""bench/gpu.py's CPU smoke mode: the project's trainer and predictor end to end on a tiny random BERT,
in an interpreter where Dagster, polars and MLflow cannot be imported (the GPU machine has none)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Refuses the packages the GPU bench must do without, then runs it as a script.
RUNNER = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"dagster", "dagster_pipes", "polars", "mlflow"}:
            raise ImportError(f"bench/gpu.py imported {name}")
sys.meta_path.insert(0, Refuse())
sys.argv = ["bench/gpu.py", "--smoke"]
runpy.run_path("bench/gpu.py", run_name="__main__")
"""


def test_gpu_bench_smoke_runs_without_dagster_polars_or_mlflow():
    out = subprocess.run([sys.executable, "-c", RUNNER], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    by_bench = {}
    for r in records:
        by_bench.setdefault(r["bench"], []).append(r)
    assert set(by_bench) == {"setup", "thucnews", "bdci", "inference"}
    assert by_bench["thucnews"][0]["train_samples_per_s"] >= by_bench["thucnews"][0]["train_samples_per_s_with_dev"] > 0
    assert 0 <= by_bench["thucnews"][0]["test_accuracy"] <= 1 and 0 <= by_bench["bdci"][0]["test_micro_f1"] <= 1
    assert [r["max_len"] for r in by_bench["inference"]] == [32, 128, 256]
    assert all(r["docs"] == 500 and r["docs_per_s"] > 0 and 0 < r["tokenisation_share"] for r in by_bench["inference"])
