"""Pure training building blocks (targets, linear baseline, thresholds, evaluation): no Dagster, no MLflow."""
