"""Start the service: settings from the corpus config, the lake and the registry; uvicorn on one process
(the models live in it; more processes would each load every model)."""

import logging
from dataclasses import replace

from dagster_autotag.serve.settings import DEFAULT_HOST, DEFAULT_PORT, ServeSettings, api_token


def build_settings(
    schemes: list[str] | None = None,
    pins: dict[str, str] | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    **options,
) -> tuple[ServeSettings, object]:
    """(settings, corpus config) for the schemes of corpus.yaml (all when `schemes` is empty)."""
    from dagster_autotag.corpus.config import load_corpus_config
    from dagster_autotag.layers import DATASETS_LAYER
    from dagster_autotag.settings import lake_dir
    from dagster_autotag.train.registry import default_tracking_uri

    corpus = load_corpus_config()
    names = list(schemes or corpus.schemes)
    unknown = [s for s in names if s not in corpus.schemes]
    if unknown:
        raise ValueError(f"unknown schemes {unknown}; {corpus.source} has {sorted(corpus.schemes)}")
    budgets = {s: corpus.schemes[s].inference_budget_s_per_100k for s in names}
    settings = ServeSettings(
        tuple(names), budgets, "", str(lake_dir() / DATASETS_LAYER), dict(pins or {}), host, port, **options,
    )  # fmt: skip
    # options checked first: opening the store may create it (and MLflow logs that), a bad option should not
    return replace(settings, tracking_uri=default_tracking_uri()), corpus


def serve(settings: ServeSettings, corpus, log_level: str = "info") -> None:
    import uvicorn

    from dagster_autotag.serve.app import create_app

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    token = api_token()
    app = create_app(settings, corpus, token=token)
    logging.getLogger(__name__).info(
        "serving %s on http://%s:%d (bearer token %s)", ", ".join(settings.schemes), settings.host, settings.port,
        "required" if token else "not required",
    )  # fmt: skip
    # uvicorn's access log has the request line, never headers: the token stays out of the logs
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=10)
