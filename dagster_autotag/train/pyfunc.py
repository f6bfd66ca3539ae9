"""The MLflow pyfunc every scheme model (or ensemble) is logged as: raw text in, per-label probabilities out.

Imports mlflow at module level, so only registry.py imports this module, lazily."""

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from dagster_autotag.train.ensemble import load_model_dir


class SchemeModelPyfunc(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `text` column (or a list of strings). Output: one column per
    target (the gate, then each sub-label) holding joint probabilities. The model's dev-tuned
    thresholds travel with it: `unwrap_python_model().decide(frame)` applies them."""

    def load_context(self, context) -> None:
        self.model = load_model_dir(Path(context.artifacts["model"]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        texts = model_input["text"].tolist() if hasattr(model_input, "columns") else list(model_input)
        probs = self.model.predict_proba([t if isinstance(t, str) else "" for t in texts])
        return pd.DataFrame(probs, columns=self.model.targets)

    def decide(self, probabilities: pd.DataFrame, texts: list[str] | None = None) -> pd.DataFrame:
        """Shipped targets over their thresholds (an agreement ensemble also needs the texts)."""
        fired = self.model.decide(probabilities.to_numpy(), texts=texts)
        return pd.DataFrame(fired, columns=self.model.targets)
