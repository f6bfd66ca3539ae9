"""`autotag serve` as a client sees it: a real service (subprocess, 127.0.0.1) over a real sqlite registry
(conftest.py). The champion swap runs last: it moves the registry the other tests read."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import polars as pl
import pytest
import requests

from dagster_autotag.corpus.config import load_corpus_config
from dagster_autotag.corpus.input_text import input_text_column
from dagster_autotag.predict.batch import predict_items
from dagster_autotag.predict.model_changes import model_changes_path, read_changes
from dagster_autotag.train.registry import load_scheme_model
from dagster_autotag_tests.serve.conftest import MAX_FIELD_CHARS, TOKEN
from dagster_autotag_tests.serve.registry import NAME, SCHEME

ITEM = {
    "id": "n1",
    "title": "宝马X5新车谍照曝光",
    "summary": "新车将于北京车展正式上市",
    "asr_text": "",
    "ocr_text": "",
}


def label(service, body: dict) -> dict:
    response = service.post("/v1/label", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def metric(service, metric_name: str, **labels) -> float:
    text = service.get("/metrics").text
    selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # exposition sorts labels
    pattern = rf"^{re.escape(metric_name)}" + (rf"\{{{re.escape(selector)}\}}" if labels else "") + r" (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def test_an_item_gets_the_daily_tables_labels_scores_and_rule_labels(service, serve_home):
    answer = label(service, {"items": [ITEM, {"id": "n2", "title": "冬季机油保养技巧"}]})["results"]
    assert [a["id"] for a in answer] == ["n1", "n2"]
    first = answer[0]
    # the model input text as corpus/items builds it (title | summary, empty fields skipped)
    expected_text = pl.DataFrame({k: [ITEM[k]] for k in ("title", "summary", "ocr_text", "asr_text")}).select(
        input_text_column(load_corpus_config().input_text)
    )["text"][0]
    assert first["text"] == expected_text == "宝马X5新车谍照曝光 | 新车将于北京车展正式上市"
    assert first["rule_labels"] == ["车展/北京车展"]
    p0 = first["schemes"][SCHEME]
    assert p0["model"] == {"name": NAME, "kind": "linear", "version": serve_home.versions["good"],
                           "run_id": p0["model"]["run_id"]}  # fmt: skip
    # exactly what predictions/daily_labels computes with the same registered version
    model = load_scheme_model(f"models:/{NAME}/{serve_home.versions['good']}")
    frame = pl.DataFrame(
        {"itemid": ["n1"], "dtype": ["api"], "text": [expected_text], "rule_labels": [["车展/北京车展"]]}
    )
    daily = predict_items(frame, model).row(0, named=True)
    assert p0["model_labels"] == daily["labels"] and p0["labels"] == daily["labels_all"]
    assert p0["labels"][-1] == "车展/北京车展" and "新车资讯/谍照" in p0["model_labels"] and p0["gate"] is True
    assert p0["scores"] == pytest.approx({s["label"]: s["score"] for s in daily["scores"]}, abs=1e-5)
    assert set(p0["scores"]) == set(model.shipped_targets())  # unshipped targets appear nowhere
    assert "新车资讯/新车到店" not in p0["scores"]
    assert answer[1]["schemes"][SCHEME]["labels"] == [] and answer[1]["rule_labels"] == []


def test_texts_are_taken_as_the_model_input(service):
    answer = label(service, {"texts": ["新车谍照曝光", "上海车展"], "schemes": [SCHEME]})["results"]
    assert [a["id"] for a in answer] == ["0", "1"] and answer[0]["text"] == "新车谍照曝光"
    assert answer[1]["rule_labels"] == ["车展/上海车展"] and "车展/上海车展" in answer[1]["schemes"][SCHEME]["labels"]


def test_health_models_and_metrics(service, serve_home):
    assert service.get("/healthz").json() == {
        "status": "ready",
        "models": {SCHEME: f"{NAME} v{serve_home.versions['good']}"},
    }
    models = service.get("/v1/models").json()
    (model,) = models["models"]
    assert model["version"] == serve_home.versions["good"] and model["source"].startswith(("registry", "decided now"))
    assert "新车资讯/新车到店" in model["targets"] and "新车资讯/新车到店" not in model["shipped"]
    label(service, {"texts": ["新车"]})
    assert metric(service, "autotag_serve_requests_total", path="/v1/label", status="200") >= 1
    assert metric(service, "autotag_serve_request_seconds_count", path="/v1/label") >= 1
    assert metric(service, "autotag_serve_batch_items_count") >= 1
    assert metric(service, "autotag_serve_model_version", scheme=SCHEME, name=NAME, kind="linear") == float(
        serve_home.versions["good"]
    )


def test_without_the_bearer_token_every_path_is_401_and_the_token_is_never_logged(service):
    for path in ("/healthz", "/v1/models", "/metrics"):
        assert requests.get(service.url + path, timeout=10).status_code == 401
    bad = {"Authorization": "Bearer not-the-token"}
    response = requests.post(service.url + "/v1/label", json={"texts": ["x"]}, headers=bad, timeout=10)
    assert response.status_code == 401 and "bearer token" in response.json()["error"]
    assert requests.post(service.url + "/v1/label", json={"texts": ["x"]}, timeout=10).status_code == 401
    label(service, {"texts": ["x"]})
    assert TOKEN not in service.log_text()


LONG = "车" * (MAX_FIELD_CHARS + 1)
BAD_BODIES = [
    (b"not json", 400, "not JSON"),
    (b"", 400, "not JSON"),
    (b"\xff\xfe\x00", 400, "not"),
    (b"[" * 100_000, 400, "JSON"),
    (b'{"texts": ["\\ud800"]}', 400, "surrogate"),
    (b"[1, 2]", 422, 'must be a JSON object with "items" or "texts", got a JSON array'),
    (b'"text"', 422, "got a JSON string"),
    (b"null", 422, "got a JSON null"),
    (b"1e999", 422, "got a JSON number"),
    (b"{}", 422, 'exactly one of "items" or "texts"'),
    (b'{"items": []}', 422, "empty"),
    (b'{"texts": []}', 422, "empty"),
    (b'{"texts": null, "items": null}', 422, "exactly one"),
    (b'{"texts": ["a"], "items": [{"id": "1"}]}', 422, "exactly one"),
    (b'{"texts": "a"}', 422, "texts"),
    (b'{"texts": [1]}', 422, "texts.0"),
    (b'{"texts": [null]}', 422, "texts.0"),
    (b'{"texts": [["a"]]}', 422, "texts.0"),
    (b'{"items": [{"title": "no id"}]}', 422, "items.0.id"),
    (b'{"items": [{"id": ""}]}', 422, "items.0.id"),
    (b'{"items": [{"id": 7}]}', 422, "items.0.id"),
    (b'{"items": [{"id": "a", "title": 5}]}', 422, "items.0.title"),
    (b'{"items": [{"id": "a", "title": {"x": 1}}]}', 422, "items.0.title"),
    (b'{"items": [{"id": "a", "colour": "red"}]}', 422, "items.0.colour"),
    (b'{"items": [{"id": "a"}, {"id": "a"}]}', 422, "unique"),
    (b'{"items": ["a"]}', 422, "items.0"),
    (b'{"items": {"id": "a"}}', 422, "items"),
    (b'{"texts": ["a"], "extra": 1}', 422, "extra"),
    (b'{"texts": ["a"], "schemes": []}', 422, "schemes"),
    (b'{"texts": ["a"], "schemes": ["p9_nope"]}', 404, "not served"),
    (('{"texts": [' + ",".join(['"a"'] * 257) + "]}").encode(), 413, "at most 256"),
    (('{"texts": ["' + LONG + '"]}').encode(), 413, "texts[0] has 1,001 characters; at most 1,000 per text"),
    (('{"items": [{"id": "a", "asr_text": "' + LONG + '"}]}').encode(), 413, "items[0].asr_text"),
    (b'{"texts": [' + b"1" * 5000 + b"]}", 400, "not usable JSON"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_input_is_a_4xx_that_says_what_is_wrong(service, body, status, message):
    for content_type in ("application/json", "text/plain"):
        response = service.post("/v1/label", data=body, headers={"Content-Type": content_type})
        assert response.status_code == status, response.text
        assert message in response.json()["error"], response.json()


def test_a_body_over_the_size_limit_is_refused_with_or_without_content_length(service):
    huge = b'{"texts": ["' + b"x" * 7_000_000 + b'"]}'
    assert service.post("/v1/label", data=huge).status_code == 413  # Content-Length: refused before reading
    mib = 1 << 20
    chunked = service.post("/v1/label", data=(huge[i : i + mib] for i in range(0, len(huge), mib)))  # no length
    assert chunked.status_code == 413 and "request body over" in chunked.json()["error"]


def test_no_bad_input_made_a_500_and_the_service_still_answers(service):
    assert metric(service, "autotag_serve_requests_total", path="/v1/label", status="500") == 0
    assert service.get("/v1/label").status_code == 405
    assert service.get("/nowhere").status_code == 404
    assert label(service, {"texts": ["新车"]})["results"][0]["id"] == "0"


def test_concurrent_requests_share_model_batches(service):
    before_batches = metric(service, "autotag_serve_batch_requests_count")
    before_requests = metric(service, "autotag_serve_batch_requests_sum")
    barrier = threading.Barrier(16)

    def one(k: int) -> list:
        barrier.wait()
        return [label(service, {"texts": [f"新车谍照{k}-{i}"] * 8})["results"][0]["id"] for i in range(4)]

    with ThreadPoolExecutor(16) as pool:
        assert all(ids == ["0"] * 4 for ids in pool.map(one, range(16)))
    batches = metric(service, "autotag_serve_batch_requests_count") - before_batches
    handled = metric(service, "autotag_serve_batch_requests_sum") - before_requests
    assert handled == 64 and batches < handled  # some batch carried more than one request


def test_the_pyfunc_gives_the_services_answer(service, serve_home):
    import mlflow
    import pandas as pd

    texts = ["宝马新车谍照曝光", "冬季机油保养技巧"]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}/{serve_home.versions['good']}")
    out = pyfunc.predict(pd.DataFrame({"text": texts}))
    assert list(out.columns) == ["labels", "gate", "scores"]
    served = [r["schemes"][SCHEME] for r in label(service, {"texts": texts})["results"]]
    for row, answer in zip(out.to_dict("records"), served):
        assert list(row["labels"]) == answer["model_labels"] and bool(row["gate"]) == answer["gate"]
        assert row["scores"] == pytest.approx(answer["scores"], abs=1e-5)
    probabilities = pyfunc.predict(pd.DataFrame({"text": texts}), params={"output": "probabilities"})
    assert list(probabilities.columns) == load_scheme_model(f"models:/{NAME}/{serve_home.versions['good']}").targets


def test_a_version_registered_before_the_labels_output_still_loads_and_answers(serve_home):
    import mlflow
    import pandas as pd

    from dagster_autotag.train.registry import champion_targets

    legacy = f"models:/{NAME}/{serve_home.versions['legacy']}"
    info = mlflow.models.get_model_info(legacy)
    assert not info.metadata and info.signature.outputs.input_names()[0] == "新车资讯"  # the old signature
    out = mlflow.pyfunc.load_model(legacy).predict(pd.DataFrame({"text": ["新车谍照曝光"]}))
    assert "新车资讯/谍照" in out.loc[0, "labels"]
    model = load_scheme_model(legacy)
    assert model.targets == info.signature.outputs.input_names()
    # the targets of a champion are read from either kind of version
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(NAME, "legacy-check", serve_home.versions["legacy"])
    assert champion_targets(NAME)[1] == model.targets  # the champion (good, new kind)
    client.delete_registered_model_alias(NAME, "legacy-check")


def test_a_pinned_service_serves_the_old_version_and_audits_the_pin(serve_home, tmp_path):
    from dagster_autotag_tests.serve.conftest import start_service, stop_service

    pin = f"{SCHEME}=linear:{serve_home.versions['legacy']}"
    pinned = start_service(serve_home.path, tmp_path / "pinned.log", "--pin", pin)
    try:
        (model,) = pinned.get("/v1/models").json()["models"]
        assert model["version"] == serve_home.versions["legacy"] and model["source"] == f"pinned by --pin {pin}"
        answer = label(pinned, {"texts": ["新车谍照曝光"]})["results"][0]["schemes"][SCHEME]
        assert answer["model"]["version"] == serve_home.versions["legacy"] and "新车资讯/谍照" in answer["labels"]
    finally:
        stop_service(pinned)
    changes = read_changes(model_changes_path(serve_home.path / "lake"), SCHEME)
    pins = [c for c in changes if c.action == "pin"]
    assert pins and pins[-1].to_version == serve_home.versions["legacy"] and pins[-1].source == "autotag serve"


def test_a_service_that_cannot_load_its_model_is_not_ready_and_says_why(serve_home, tmp_path):
    from dagster_autotag_tests.serve.conftest import start_service, stop_service

    broken = start_service(serve_home.path, tmp_path / "broken.log", "--pin", f"{SCHEME}=linear:99", ready=False)
    try:
        deadline = time.monotonic() + 60
        while not (health := broken.get("/healthz").json()).get("errors") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert broken.get("/healthz").status_code == 503 and health["loading"] == [SCHEME]
        assert (
            "the pin 'linear:99' names no registered version (autotag.p0_newcar.linear v99)" in health["errors"][SCHEME]
        )
        refused = broken.post("/v1/label", json={"texts": ["新车"]})
        assert refused.status_code == 503 and refused.json()["status"] == "loading"
        assert broken.process.poll() is None  # still up, still polling: a fixed registry would be picked up
    finally:
        stop_service(broken)


def wait_for_version(service, version: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        models = service.get("/v1/models").json()["models"]
        if models and models[0]["version"] == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"the service did not swap to v{version} in {timeout_s} s: {service.log_text()[-3000:]}")


def test_zz_a_moved_champion_is_swapped_in_without_a_failed_request_and_rolled_back(service, serve_home):
    """Last in the file: it moves the champion (and back, by `autotag rollback`)."""
    import subprocess
    import sys

    from dagster_autotag_tests.serve import registry

    good, strict = serve_home.versions["good"], serve_home.versions["strict"]
    seen, failures, stop = [], [], threading.Event()

    def hammer() -> None:
        session = requests.Session()
        while not stop.is_set():
            try:
                r = session.post(
                    service.url + "/v1/label", json={"texts": ["新车谍照曝光"]}, headers=service.headers(), timeout=30
                )
            except requests.RequestException as exc:
                failures.append(repr(exc))
                continue
            if r.status_code != 200:
                failures.append(f"{r.status_code} {r.text[:200]}")
            else:
                seen.append(r.json()["results"][0]["schemes"][SCHEME]["model"]["version"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        registry.set_champion(strict)  # promotion moved the alias: the recorded decision is now stale
        wait_for_version(service, strict)
        time.sleep(0.5)
        rollback = subprocess.run(
            [sys.executable, "-m", "dagster_autotag.cli", "rollback", "--home", str(serve_home.path), "--scheme",
             SCHEME, "--kind", "linear", "--to", good, "--why", "strict gate missed too much"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert rollback.returncode == 0, rollback.stderr
        wait_for_version(service, good)
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not failures, failures[:5]
    assert {good, strict} <= set(seen) and seen[-1] == good
    assert metric(service, "autotag_serve_model_swaps_total", scheme=SCHEME) >= 2
    changes = read_changes(model_changes_path(serve_home.path / "lake"), SCHEME)
    rollback_event = [c for c in changes if c.action == "rollback"][-1]
    assert (rollback_event.from_version, rollback_event.to_version) == (strict, good)
    assert rollback_event.why == "strict gate missed too much" and rollback_event.who
    serving = [c for c in changes if c.action == "serving"]
    assert [c.to_version for c in serving][-2:] == [strict, good]  # each decision that changed the model


def test_one_batch_of_mixed_requests_answers_each_in_its_own_order(serve_home):
    """label_batch in-process: items and texts requests, and a request for no scheme but this one, in one
    model batch, each answered as if alone."""
    from dagster_autotag.serve.app import label_batch
    from dagster_autotag.serve.models import Target, load_target
    from dagster_autotag.serve.schema import LabelRequest

    target = Target(SCHEME, "linear", NAME, serve_home.versions["good"], "run", "test")
    models = {SCHEME: load_target(target)}
    corpus = load_corpus_config()
    requests_ = [
        LabelRequest.model_validate({"items": [ITEM, {"id": "n2", "title": "机油保养"}]}),
        LabelRequest.model_validate({"texts": ["上海车展新车谍照"]}),
        LabelRequest.model_validate({"items": [{"id": "z", "ocr_text": "广州车展"}]}),
    ]
    together = label_batch([(r, [SCHEME]) for r in requests_], models, corpus)
    alone = [label_batch([(r, [SCHEME])], models, corpus)[0] for r in requests_]
    assert together == alone
    assert [[a["id"] for a in answer] for answer in together] == [["n1", "n2"], ["0"], ["z"]]
    assert together[2][0]["text"] == "广州车展" and together[2][0]["rule_labels"] == ["车展/广州车展"]
