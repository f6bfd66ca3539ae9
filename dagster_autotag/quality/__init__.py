"""Quality of the model outputs and inputs: label and input drift (pure, no Dagster)."""
