"""The FastAPI application: POST /v1/label, GET /healthz, GET /v1/models, GET /metrics.

FastAPI (over Starlette, served by uvicorn) rather than LitServe: it is already in the venv through
mlflow's own scoring server, its pydantic validation gives the field-level 4xx messages the API needs,
and micro-batching is a few lines here (batcher.py), where LitServe would add a second server framework
and its own worker processes that each load every model.
"""

import hmac
import json
import logging
import time
from contextlib import asynccontextmanager

import polars as pl
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from dagster_autotag.corpus.config import CorpusConfig
from dagster_autotag.predict.batch import predict_items
from dagster_autotag.serve.batcher import MicroBatcher
from dagster_autotag.serve.inputs import request_frame
from dagster_autotag.serve.metrics import ServeMetrics
from dagster_autotag.serve.models import LoadedModel, ModelStore, Reloader
from dagster_autotag.serve.schema import LabelRequest
from dagster_autotag.serve.settings import ServeSettings

logger = logging.getLogger(__name__)
SCORE_DIGITS = 6
KNOWN_PATHS = {"/v1/label", "/healthz", "/v1/models", "/metrics"}
JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def create_app(settings: ServeSettings, corpus: CorpusConfig, token: str | None = None) -> FastAPI:
    """`token`: the bearer token every request must carry (None: no auth). The models load on a
    background thread once the app starts (/healthz says when), so the port opens at once."""
    metrics = ServeMetrics()
    store = ModelStore(settings.schemes)
    max_body = settings.max_body_bytes

    def on_swap(loaded: LoadedModel, previous: LoadedModel | None) -> None:
        t = loaded.target
        metrics.serving(t.scheme, t.name, t.kind, t.version, previous and (previous.target.name, previous.target.kind))
        if previous is not None:
            metrics.swaps.labels(t.scheme).inc()

    follower = Reloader(settings, store, on_swap, lambda scheme, _: metrics.reload_errors.labels(scheme).inc())

    def run_batch(payloads: list[tuple[LabelRequest, list[str]]]) -> list[list[dict]]:
        models = store.current()  # one consistent set for the whole batch, whatever swaps meanwhile
        return label_batch(payloads, models, corpus, metrics)

    batcher = MicroBatcher(run_batch, settings.max_batch_items, on_batch=lambda jobs, items: (
        metrics.batch_requests.observe(jobs), metrics.batch_items.observe(items)))  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        follower.start()
        try:
            yield
        finally:
            follower.stop()
            await batcher.stop()

    app = FastAPI(title="autotag", summary="Labels for Chinese automotive content", lifespan=lifespan)
    app.state.store, app.state.metrics, app.state.reloader = store, metrics, follower

    @app.middleware("http")
    async def guard(request: Request, call_next):
        started = time.perf_counter()
        path = request.url.path if request.url.path in KNOWN_PATHS else "other"
        if token is not None and not _authorized(request, token):
            response = _error(401, "missing or wrong bearer token (Authorization: Bearer <AUTOTAG_API_TOKEN>)")
            response.headers["WWW-Authenticate"] = "Bearer"
        elif _too_large(request, max_body):
            response = _error(413, f"request body over {max_body:,} bytes (at most {settings.max_items} items)")
        else:
            try:
                response = await call_next(request)
            except Exception:  # noqa: BLE001 - logged with its trace; the client gets no internals
                logger.exception("unhandled error on %s", path)
                response = _error(500, "internal error (logged by the service)")
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [_readable(e) for e in exc.errors()[:20]]
        return _error(422, "invalid request: " + "; ".join(errors), errors=errors)

    @app.post("/v1/label")
    async def label(request: Request):
        # parsed here, not by a FastAPI body parameter: JSON whatever the Content-Type (curl -d sends
        # form-encoded), and a body that is not JSON gets its own message
        raw = await read_body(request, max_body)
        if raw is None:  # chunked bodies have no Content-Length for the middleware to check
            return _error(413, f"request body over {max_body:,} bytes (at most {settings.max_items} items)")
        body = parse_label_request(raw)
        if isinstance(body, JSONResponse):
            return body
        if body.size() > settings.max_items:
            return _error(413, f"{body.size()} items in one request; at most {settings.max_items} (max_items)")
        where, longest = body.longest_field()
        if longest > settings.max_field_chars:
            return _error(413, f"{where} has {longest:,} characters; at most {settings.max_field_chars:,} per text")
        schemes = body.schemes or list(settings.schemes)
        unknown = [s for s in schemes if s not in settings.schemes]
        if unknown:
            return _error(404, f"schemes {unknown} are not served here; serving {list(settings.schemes)}")
        if store.missing():
            return _not_ready(store)
        return {"results": await batcher.submit((body, schemes), body.size())}

    @app.get("/healthz")
    async def healthz():
        if store.missing():
            return _not_ready(store)
        return {
            "status": "ready",
            "models": {s: f"{m.target.name} v{m.target.version}" for s, m in store.current().items()},
        }

    @app.get("/v1/models")
    async def models():
        current = store.current()
        return {
            "models": [current[s].describe() for s in settings.schemes if s in current],
            "loading": store.missing(),
            "errors": store.errors(),
            "poll_s": settings.poll_s,
        }

    @app.get("/metrics")
    async def prometheus():
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it passes `limit` bytes (never held whole in memory past it)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def parse_label_request(raw: bytes) -> LabelRequest | JSONResponse:
    """The validated request, or the 400/422 answer that says what is wrong."""
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        return _error(400, "request body is not UTF-8 text")
    except json.JSONDecodeError as exc:
        return _error(400, f"request body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    except (ValueError, RecursionError) as exc:  # an integer of 5000 digits, arrays nested 100k deep
        return _error(400, f"request body is not usable JSON: {type(exc).__name__}")
    try:  # "\ud800" is valid JSON but no text: polars (and any UTF-8 consumer) cannot hold it
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return _error(400, "request body has an unpaired UTF-16 surrogate escape (e.g. \\ud800): not text")
    except RecursionError:
        return _error(400, "request body is nested too deeply")
    if not isinstance(data, dict):
        return _error(
            422, f'request body must be a JSON object with "items" or "texts", got a JSON {JSON_TYPES[type(data)]}'
        )
    try:
        return LabelRequest.model_validate(data)
    except ValidationError as exc:
        errors = [_readable(e) for e in exc.errors(include_url=False, include_input=False)[:20]]
        return _error(422, "invalid request: " + "; ".join(errors), errors=errors)


def label_batch(
    payloads: list[tuple[LabelRequest, list[str]]], models: dict[str, LoadedModel], corpus: CorpusConfig, metrics=None
) -> list[list[dict]]:
    """Per request, per item: {"id", "text", "rule_labels", "schemes": {scheme: answer}}. Each scheme's
    model runs once over the items of every request that asked for it."""
    frame = request_frame([request for request, _ in payloads], corpus)
    sizes = [request.size() for request, _ in payloads]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    answers: dict[str, dict[int, list[dict]]] = {}  # scheme → request index → rows
    for scheme in dict.fromkeys(s for _, schemes in payloads for s in schemes):
        wanted = [i for i, (_, schemes) in enumerate(payloads) if scheme in schemes]
        rows = pl.concat([frame.slice(starts[i], sizes[i]) for i in wanted])
        predicted = predict_items(rows, models[scheme].model, batch_size=max(rows.height, 1)).to_dicts()
        if metrics is not None:
            metrics.items.labels(scheme).inc(rows.height)
        offset = 0
        answers[scheme] = {}
        for i in wanted:
            answers[scheme][i] = [_scheme_answer(r, models[scheme]) for r in predicted[offset : offset + sizes[i]]]
            offset += sizes[i]
    results = []
    for i, (_, schemes) in enumerate(payloads):
        rows = frame.slice(starts[i], sizes[i]).iter_rows(named=True)
        results.append([
            {"id": row["itemid"], "text": row["text"], "rule_labels": row["rule_labels"],
             "schemes": {s: answers[s][i][j] for s in schemes}}
            for j, row in enumerate(rows)
        ])  # fmt: skip
    return results


def _scheme_answer(row: dict, loaded: LoadedModel) -> dict:
    t = loaded.target
    return {
        "labels": row["labels_all"],  # the model's shipped labels, then the rule labels not already there
        "model_labels": row["labels"],
        "gate": row["gate"],
        "scores": {s["label"]: round(float(s["score"]), SCORE_DIGITS) for s in row["scores"]},
        "model": {"name": t.name, "kind": t.kind, "version": t.version, "run_id": t.run_id},
    }


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _too_large(request: Request, max_body: int) -> bool:
    length = request.headers.get("content-length", "")
    return length.isdigit() and int(length) > max_body


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _not_ready(store: ModelStore) -> JSONResponse:
    return JSONResponse({"status": "loading", "loading": store.missing(), "errors": store.errors()}, status_code=503)


def _readable(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
    return f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}"
