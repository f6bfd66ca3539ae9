"""Service benchmark: closed-loop clients against a running `autotag serve` on loopback. Each client sends
one request, waits for the answer, sends the next (no think time); the run stops after --seconds or
--requests, whichever comes first. Prints throughput (items/s), latency p50/p95/p99/max, errors (any
non-200 or transport error), the service's batch sizes (its /metrics) and the load average before/after.

    # 1. a service over a home with a champion (e.g. after `make demo`, or `autotag demo --home H`):
    taskset -c 0,1 .venv/bin/autotag serve --home H --schemes p0_newcar &
    # 2. the target run: 8 clients, single-item requests, 2 minutes
    .venv/bin/python bench/serve.py --url http://127.0.0.1:8000 --clients 8 --seconds 120 --texts-from H/lake/datasets/p0_newcar/test.parquet

Texts: the `text` column of --texts-from (a dataset split), else a few built-in lines; cycled. Requests use
`items` with the text as title, so the service builds the model input the way corpus/items does.
Clients are aiohttp tasks on one event loop in this process (cheaper per request than threads, so the
client steals less CPU from the service on a small machine). $AUTOTAG_API_TOKEN is sent when set.
"""

import argparse
import asyncio
import json
import os
import re
import statistics
import time
import urllib.request

import aiohttp

BUILT_IN = [
    "宝马X5谍照曝光，新车将于明年上市",
    "冬季用车保养技巧：机油和轮胎",
    "比亚迪新车正式上市，售价公布",
    "北京车展探馆：多款新车首发",
]


def load_texts(path: str | None) -> list[str]:
    if not path:
        return BUILT_IN
    import polars as pl

    texts = [t for t in pl.read_parquet(path, columns=["text"])["text"].drop_nulls().to_list() if t]
    if not texts:
        raise SystemExit(f"{path} has no texts")
    return texts


async def client(session, url, texts, offset, deadline, budget, latencies, errors, items_per_request):
    k = offset
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        batch = [{"id": str(k + j), "title": texts[(k + j) % len(texts)]} for j in range(items_per_request)]
        k += items_per_request
        started = time.perf_counter()
        try:
            async with session.post(url + "/v1/label", json={"items": batch}) as response:
                await response.read()
                if response.status != 200:
                    errors.append(response.status)
                    continue
        except aiohttp.ClientError as exc:
            errors.append(type(exc).__name__)
            continue
        latencies.append(time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def server_batches(url: str, headers: dict) -> dict[str, float]:
    request = urllib.request.Request(url + "/metrics", headers=headers)
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    found = {}
    for name in (
        "autotag_serve_batch_items_sum",
        "autotag_serve_batch_items_count",
        "autotag_serve_batch_requests_sum",
    ):
        match = re.search(rf"^{name} (\S+)$", text, re.M)
        found[name] = float(match.group(1)) if match else 0.0
    return found


async def run(args) -> dict:
    texts = load_texts(args.texts_from)
    token = os.environ.get("AUTOTAG_API_TOKEN", "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    before = server_batches(args.url, headers)
    latencies, errors, budget = [], [], [args.requests]
    connector = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        # warm-up: the first requests pay lazy initialisation
        await client(session, args.url, texts, 0, time.monotonic() + 2, [20], [], [], 1)
        load_before = os.getloadavg()
        started = time.monotonic()
        deadline = started + args.seconds
        await asyncio.gather(*[
            client(session, args.url, texts, 1_000_000 * i, deadline, budget, latencies, errors, args.items)
            for i in range(args.clients)
        ])  # fmt: skip
        elapsed = time.monotonic() - started
    after = server_batches(args.url, headers)
    batches = after["autotag_serve_batch_items_count"] - before["autotag_serve_batch_items_count"]
    done = len(latencies)
    return {
        "clients": args.clients,
        "items_per_request": args.items,
        "seconds": round(elapsed, 1),
        "requests_ok": done,
        "errors": len(errors),
        "error_kinds": sorted({str(e) for e in errors}),
        "items_per_s": round(done * args.items / elapsed, 1),
        "requests_per_s": round(done / elapsed, 1),
        "latency_ms": {q: round(1000 * percentile(latencies, p), 1) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(1000 * max(latencies), 1), "mean": round(1000 * statistics.fmean(latencies), 1)}
        if latencies
        else {},
        "server_batches": int(batches),
        "server_items_per_batch": round(
            (after["autotag_serve_batch_items_sum"] - before["autotag_serve_batch_items_sum"]) / batches, 2
        )
        if batches
        else None,
        "server_requests_per_batch": round(
            (after["autotag_serve_batch_requests_sum"] - before["autotag_serve_batch_requests_sum"]) / batches, 2
        )
        if batches
        else None,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0, help="stop after this long")
    parser.add_argument("--requests", type=int, default=10_000_000, help="stop after this many requests")
    parser.add_argument("--items", type=int, default=1, help="items per request")
    parser.add_argument("--texts-from", help="a Parquet file with a `text` column (a dataset split)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
