"""The MLflow pyfunc every scheme model (or ensemble) is logged as: raw text in, the shipped labels and
their scores out — what `autotag serve` answers per scheme (`model_labels`, `gate`, `scores`), so
`mlflow models serve` gives the same answer. `params={"output": "probabilities"}` gives the old output,
one probability column per target.

Imports mlflow at module level, so only registry.py imports this module, lazily. Versions registered before
this output existed pickled this same class by reference with no state of their own: they load and
answer with this code.
"""

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from dagster_autotag.predict.batch import score_and_decide
from dagster_autotag.train.ensemble import load_model_dir

OUTPUT_PARAM = "output"
LABELS_OUTPUT, PROBABILITIES_OUTPUT = "labels", "probabilities"


class SchemeModelPyfunc(mlflow.pyfunc.PythonModel):
    """Input: a DataFrame with a `text` column (or a list of strings). Output (default): per text
    `labels` (shipped targets over their thresholds, gate first; a sub-label only with its gate), `gate`
    and `scores` (shipped target → joint probability). The model's dev-tuned thresholds travel with it."""

    def load_context(self, context) -> None:
        self.model = load_model_dir(Path(context.artifacts["model"]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        texts = model_input["text"].tolist() if hasattr(model_input, "columns") else list(model_input)
        texts = [t if isinstance(t, str) else "" for t in texts]
        output = (params or {}).get(OUTPUT_PARAM, LABELS_OUTPUT)
        if output == PROBABILITIES_OUTPUT:
            return pd.DataFrame(self.model.predict_proba(texts), columns=self.model.targets)
        if output != LABELS_OUTPUT:
            raise ValueError(f"params.{OUTPUT_PARAM} is {LABELS_OUTPUT!r} or {PROBABILITIES_OUTPUT!r}, got {output!r}")
        probs, fired = score_and_decide(self.model, texts)
        return labels_frame(self.model, probs, fired)

    def decide(self, probabilities: pd.DataFrame, texts: list[str] | None = None) -> pd.DataFrame:
        """Shipped targets over their thresholds (an agreement ensemble also needs the texts)."""
        fired = self.model.decide(probabilities.to_numpy(), texts=texts)
        return pd.DataFrame(fired, columns=self.model.targets)


def labels_frame(model, probs: np.ndarray, fired: np.ndarray) -> pd.DataFrame:
    """labels / gate / scores per row, shipped targets only (as predictions/daily_labels keeps them)."""
    targets = list(model.targets)
    shipped = set(model.shipped_targets())
    kept = [j for j, t in enumerate(targets) if t in shipped]
    gate = fired[:, 0] & (targets[0] in shipped)
    labels = [[targets[j] for j in kept if row[j] and (j == 0 or gate[i])] for i, row in enumerate(fired)]
    scores = [{targets[j]: float(p[j]) for j in kept} for p in probs]
    return pd.DataFrame({"labels": labels, "gate": gate.astype(bool), "scores": scores})
