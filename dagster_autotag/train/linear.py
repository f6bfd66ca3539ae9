"""Linear baseline: TF-IDF character n-grams + one logistic regression per label.

Characters rather than words because Chinese needs no tokenizer that way, and 1–3-grams already
catch most auto vocabulary (谍照, 上市, 报价). The fitted weights are kept as one float32 matrix,
so prediction is a single sparse product and the pickle stays small.

`exclusive=True` (issue #14 §3: one label per text) fits one multinomial logistic regression
instead, and predict_proba returns its softmax (rows sum to 1). A text with several labels counts
once per label with weight 1/count; a text without one is left out (nothing to choose).
"""

import pickle
from pathlib import Path

import joblib
import numpy as np
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from dagster_autotag.train.configs import LinearConfig

FORMAT_VERSION = 1
ABSENT_LOGIT = -1e4  # a label without train examples in a softmax: exp() of it is 0


class LinearModel:
    def __init__(self, config: LinearConfig | None = None):
        self.config = config or LinearConfig()
        self.vectorizer: TfidfVectorizer | None = None
        self.coef: np.ndarray | None = None  # (L, V) float32; zero rows for constant labels
        self.intercept: np.ndarray | None = None  # (L,) float32
        self.constant: np.ndarray | None = None  # (L,) float32: NaN where learnt, else the fixed probability
        self.softmax = False  # True: one multinomial model, rows of predict_proba sum to 1

    def fit(self, texts: list[str], y: np.ndarray, exclusive: bool = False) -> "LinearModel":
        cfg = self.config
        y = np.asarray(y)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        if len(texts) != y.shape[0]:
            raise ValueError(f"{len(texts)} texts but {y.shape[0]} target rows")
        self.vectorizer = TfidfVectorizer(
            analyzer=cfg.analyzer,
            ngram_range=cfg.ngram_range,
            min_df=cfg.min_df,
            max_features=cfg.max_features,
            sublinear_tf=cfg.sublinear_tf,
            dtype=np.float32,
        )
        x = self.vectorizer.fit_transform(texts)
        if exclusive:
            return self._fit_softmax(x, y > 0)
        n_labels = y.shape[1]
        positives = (y > 0).sum(axis=0)
        # a label with only one class in train cannot be fitted: predict that class with certainty
        self.constant = np.where(positives == 0, 0.0, np.where(positives == y.shape[0], 1.0, np.nan)).astype(np.float32)
        learnt = np.flatnonzero(np.isnan(self.constant))
        self.coef = np.zeros((n_labels, x.shape[1]), dtype=np.float32)
        self.intercept = np.zeros(n_labels, dtype=np.float32)
        # liblinear wants float64 CSR with sorted indices and would convert/sort the shared matrix
        # in place from every thread (a data race: "indices array has fewer than nnz elements", and
        # once an abort); do it once here so the threads only read.
        x64 = x.astype(np.float64).tocsr()
        x64.sum_duplicates()
        x64.sort_indices()
        fitted = joblib.Parallel(n_jobs=min(cfg.n_jobs, max(len(learnt), 1)), prefer="threads")(
            joblib.delayed(self._fit_one)(x64, (y[:, j] > 0).astype(np.int8)) for j in learnt
        )
        for j, clf in zip(learnt, fitted):
            self.coef[j] = clf.coef_[0]
            self.intercept[j] = clf.intercept_[0]
        return self

    def _fit_softmax(self, x, y: np.ndarray) -> "LinearModel":
        cfg = self.config
        n_labels = y.shape[1]
        rows, labels = np.nonzero(y)
        weight = 1.0 / y.sum(axis=1)[rows]
        present = np.unique(labels)
        self.softmax = True
        self.constant = np.full(n_labels, np.nan, dtype=np.float32)
        self.coef = np.zeros((n_labels, x.shape[1]), dtype=np.float32)
        self.intercept = np.full(n_labels, ABSENT_LOGIT, dtype=np.float32)  # never seen in train: never chosen
        self.intercept[present] = 0.0
        if len(present) < 2:
            return self  # one label or none: it is the answer whatever the text
        clf = LogisticRegression(
            C=cfg.C,
            class_weight=cfg.class_weight,
            solver="saga" if cfg.solver == "saga" else "lbfgs",  # liblinear has no multinomial loss
            max_iter=cfg.max_iter,
        ).fit(x[rows], labels, sample_weight=weight)
        if len(present) == 2:  # sklearn's binary form: one weight row, for the second class
            self.coef[present[1]], self.intercept[present[1]] = clf.coef_[0], clf.intercept_[0]
        else:
            self.coef[present], self.intercept[present] = clf.coef_, clf.intercept_
        return self

    def _fit_one(self, x, target: np.ndarray) -> LogisticRegression:
        cfg = self.config
        dual = cfg.dual if cfg.dual is not None else x.shape[1] > x.shape[0]
        clf = LogisticRegression(
            C=cfg.C,
            class_weight=cfg.class_weight,
            solver=cfg.solver,
            max_iter=cfg.max_iter,
            dual=dual and cfg.solver == "liblinear",  # only liblinear has a dual form
        )
        return clf.fit(x, target)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if self.vectorizer is None:
            raise RuntimeError("LinearModel is not fitted")
        x = self.vectorizer.transform(texts)
        if self.softmax:
            return softmax(np.asarray(x @ self.coef.T) + self.intercept, axis=1).astype(np.float32)
        # binary LogisticRegression.predict_proba is exactly sigmoid(decision_function)
        probs = expit(np.asarray(x @ self.coef.T) + self.intercept).astype(np.float32)
        fixed = ~np.isnan(self.constant)
        probs[:, fixed] = self.constant[fixed]
        return probs

    @property
    def n_labels(self) -> int:
        return 0 if self.coef is None else self.coef.shape[0]

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "vectorizer": self.vectorizer,
            "coef": self.coef,
            "intercept": self.intercept,
            "constant": self.constant,
            "softmax": self.softmax,
        }
        joblib.dump(state, path, protocol=pickle.HIGHEST_PROTOCOL)
        return path

    @classmethod
    def load(cls, path: Path) -> "LinearModel":
        state = joblib.load(Path(path))
        if state.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: linear model format {state.get('format')!r}, expected {FORMAT_VERSION}")
        model = cls(LinearConfig(**state["config"]))
        model.vectorizer = state["vectorizer"]
        model.coef, model.intercept, model.constant = state["coef"], state["intercept"], state["constant"]
        model.softmax = state.get("softmax", False)  # saved before exclusive schemes: per-label sigmoids
        return model
