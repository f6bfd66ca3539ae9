"""`autotag serve`: an HTTP labelling service over each scheme's serving model, resolved through the MLflow
registry like the daily predictions (predict/champion.py). Pure: no Dagster.

settings.py (options), schema.py (request/response, limits), inputs.py (model input text and rule labels,
by the corpus's own functions), models.py (registry resolution, background reload, atomic swap),
batcher.py (micro-batching), metrics.py (Prometheus), app.py (FastAPI), main.py (uvicorn).
"""
