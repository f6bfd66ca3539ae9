"""The corpus configuration (corpus.yaml): input-text template, label schemes and regex rules.

Loaded once when the code location loads (schemes become `datasets/<scheme>` assets), from the
packaged `corpus.yaml` or the file named by AUTOTAG_CORPUS_CONFIG. Errors name the file and key.
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import yaml

DEFAULT_CONFIG = Path(__file__).with_name("corpus.yaml")
CONFIG_ENV = "AUTOTAG_CORPUS_CONFIG"
TEXT_FIELDS = ("title", "summary", "asr_text", "ocr_text")
SCHEME_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # becomes an asset key and column prefix
# An hour per 100k items: TextCNN (~25 s on 2 CPU cores) and linear fit easily, BERT on CPU (~100 min) does not.
DEFAULT_INFERENCE_BUDGET_S_PER_100K = 3600.0
SCHEME_KEYS = {"gate", "label_level", "labels", "description", "inference_budget_s_per_100k", "exclusive"}


class CorpusConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TextField:
    name: str
    max_chars: int


@dataclass(frozen=True)
class InputText:
    fields: tuple[TextField, ...]
    separator: str


@dataclass(frozen=True)
class Scheme:
    name: str
    gate: tuple[str, ...]  # subtree roots by path name
    label_level: int
    labels: tuple[str, ...] | None = None  # pinned label paths; None = every tag at label_level
    description: str = ""
    # seconds of daily inference per 100k items a serving model may cost; None = no limit
    inference_budget_s_per_100k: float | None = DEFAULT_INFERENCE_BUDGET_S_PER_100K
    # one sub-label per gate-positive item: a softmax over the sub-labels, the argmax predicted
    exclusive: bool = False

    @property
    def gate_column(self) -> str:
        return f"{self.name}_gate"

    @property
    def labels_column(self) -> str:
        return f"{self.name}_labels"


@dataclass(frozen=True)
class Rule:
    label: str
    pattern: str


@dataclass(frozen=True)
class CorpusConfig:
    input_text: InputText
    schemes: dict[str, Scheme]
    rules: tuple[Rule, ...]
    source: str = ""

    def scheme(self, name: str) -> Scheme:
        if name not in self.schemes:
            raise KeyError(f"no scheme {name!r} in {self.source}; have {sorted(self.schemes)}")
        return self.schemes[name]


def load_corpus_config(path: str | os.PathLike | None = None) -> CorpusConfig:
    """`path`, else $AUTOTAG_CORPUS_CONFIG, else the packaged corpus.yaml."""
    chosen = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CorpusConfigError(f"corpus config {chosen} does not exist (set {CONFIG_ENV} to a YAML file)") from exc
    except yaml.YAMLError as exc:
        raise CorpusConfigError(f"corpus config {chosen} is not valid YAML: {exc}") from exc
    return parse_corpus_config(raw, source=str(chosen))


def parse_corpus_config(raw: object, source: str = "<dict>") -> CorpusConfig:
    def fail(msg: str) -> CorpusConfigError:
        return CorpusConfigError(f"{source}: {msg}")

    if not isinstance(raw, dict):
        raise fail("expected a mapping with input_text, schemes and rules")
    unknown = set(raw) - {"input_text", "schemes", "rules"}
    if unknown:
        raise fail(f"unknown top-level keys {sorted(unknown)}")
    return CorpusConfig(
        input_text=_input_text(raw.get("input_text") or {}, fail),
        schemes=_schemes(raw.get("schemes") or {}, fail),
        rules=_rules(raw.get("rules") or [], fail),
        source=source,
    )


def _input_text(raw: dict, fail) -> InputText:
    fields = []
    for i, item in enumerate(raw.get("fields") or [{"name": f, "max_chars": 256} for f in TEXT_FIELDS]):
        name, budget = item.get("name"), item.get("max_chars")
        if name not in TEXT_FIELDS:
            raise fail(f"input_text.fields[{i}].name must be one of {TEXT_FIELDS}, got {name!r}")
        if not isinstance(budget, int) or budget <= 0:
            raise fail(f"input_text.fields[{i}].max_chars must be a positive integer, got {budget!r}")
        fields.append(TextField(name, budget))
    if len({f.name for f in fields}) != len(fields):
        raise fail("input_text.fields names a field twice")
    return InputText(tuple(fields), str(raw.get("separator", " | ")))


def _schemes(raw: dict, fail) -> dict[str, Scheme]:
    if not isinstance(raw, dict):
        raise fail("schemes must be a mapping of name → scheme")
    schemes = {}
    for name, spec in raw.items():
        if not SCHEME_NAME.match(str(name)):
            raise fail(f"scheme name {name!r} must match {SCHEME_NAME.pattern}")
        spec = spec or {}
        unknown = set(spec) - SCHEME_KEYS
        if unknown:
            raise fail(f"schemes.{name}: unknown keys {sorted(unknown)}")
        gate = spec.get("gate")
        gate = [gate] if isinstance(gate, str) else gate
        if not gate or not all(isinstance(g, str) and g.strip() for g in gate):
            raise fail(f"schemes.{name}.gate must name one or more subtrees by path name, e.g. [新车资讯]")
        gate = tuple(g.strip().strip("/") for g in gate)
        level = spec.get("label_level")
        min_level = max(g.count("/") + 2 for g in gate)
        if not isinstance(level, int) or level < min_level:
            raise fail(f"schemes.{name}.label_level must be an integer ≥ {min_level} (below the gate), got {level!r}")
        labels = spec.get("labels")
        if labels is not None:
            labels = tuple(str(x).strip("/") for x in labels)
            outside = [x for x in labels if not any(x.startswith(g + "/") for g in gate)]
            if outside:
                raise fail(f"schemes.{name}.labels outside the gate subtrees: {outside}")
        budget = spec.get("inference_budget_s_per_100k", DEFAULT_INFERENCE_BUDGET_S_PER_100K)
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
            raise fail(f"schemes.{name}.inference_budget_s_per_100k must be a positive number or null, got {budget!r}")
        exclusive = spec.get("exclusive", False)
        if not isinstance(exclusive, bool):
            raise fail(f"schemes.{name}.exclusive must be true or false, got {exclusive!r}")
        description = str(spec.get("description", ""))
        budget = None if budget is None else float(budget)
        schemes[name] = Scheme(name, gate, level, labels, description, budget, exclusive)
    return schemes


def _rules(raw: list, fail) -> tuple[Rule, ...]:
    rules = []
    for i, item in enumerate(raw):
        label, pattern = (item or {}).get("label"), (item or {}).get("pattern")
        if not label or not pattern:
            raise fail(f"rules[{i}] needs a label and a pattern")
        try:  # polars applies the rules: Rust regex syntax (no look-around, no back-references)
            pl.Series([""]).str.contains(pattern)
        except pl.exceptions.ComputeError as exc:
            raise fail(f"rules[{i}] ({label}) pattern does not compile: {exc}") from exc
        rules.append(Rule(str(label), str(pattern)))
    return tuple(rules)
