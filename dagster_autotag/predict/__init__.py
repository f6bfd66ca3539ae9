"""Daily predictions: a champion model over corpus items (batch.py, pure) and the Dagster assets."""
