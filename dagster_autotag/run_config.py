"""Dagster run config derived from the pure option dataclasses, so an option is declared once.

`config_from_dataclass(LinearConfig, base=TrainRunConfig)` is a `dg.Config` subclass of `base` with one
field per dataclass field: the same name (or the `rename`d one), the same default, and the field's
description (options.py). Types become what Dagster config accepts:
- `tuple[X, ...]` → `list[X]` (and back to a tuple in `to_dataclass`);
- `Literal[...] | None` → `str | None` (Dagster has no optional enum; the choices go into the
  description, and the dataclass or the code using it validates);
- `Literal[...]` (a launchpad enum), `X | None` (null allowed) and plain types as they are.
`fields` replaces or adds fields where the Dagster side differs (e.g. BERT's `model_dir`, which
defaults to an environment variable); `exclude` leaves a dataclass field to the subclass, which
passes it to `to_dataclass(**values)`.
"""

import dataclasses
import types
from collections.abc import Collection, Mapping
from dataclasses import MISSING
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

import dagster as dg
import pydantic
from pydantic.fields import FieldInfo

from dagster_autotag.options import description_of


class DataclassConfig(dg.Config):
    """Base of the derived configs: `to_dataclass()` builds the dataclass from the run config."""

    dataclass_source: ClassVar[type]
    config_keys: ClassVar[Mapping[str, str]]  # dataclass field → config field, for the fields derived

    def to_dataclass(self, **values: Any) -> Any:
        """The dataclass with every derived field from this config; `values` for the others (or to override)."""
        hints = get_type_hints(self.dataclass_source)
        for name, key in self.config_keys.items():
            if name not in values:
                value = getattr(self, key)
                values[name] = tuple(value) if value is not None and _is_tuple(hints[name]) else value
        return self.dataclass_source(**values)


def config_from_dataclass(
    source: type,
    *,
    base: type[dg.Config] = dg.Config,
    rename: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
    fields: Mapping[str, tuple[Any, FieldInfo]] | None = None,
) -> type[DataclassConfig]:
    """A `base` subclass with `source`'s fields (see the module doc). Subclass it to name it and add methods:

    class LinearRunConfig(config_from_dataclass(LinearConfig, base=TrainRunConfig, rename={"C": "c"})): ...
    """
    if not dataclasses.is_dataclass(source):
        raise TypeError(f"{source!r} is not a dataclass")
    rename, extra = dict(rename or {}), dict(fields or {})
    hints = get_type_hints(source)
    unknown = (set(rename) | set(exclude)) - set(hints)
    if unknown:
        raise ValueError(f"{source.__name__} has no field {sorted(unknown)}")
    definitions: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for f in dataclasses.fields(source):
        key = rename.get(f.name, f.name)
        if f.name in exclude or key in extra:
            continue
        if key in base.model_fields:
            raise ValueError(f"{source.__name__}.{f.name} clashes with {base.__name__}.{key}: rename it")
        keys[f.name] = key
        definitions[key] = _field(f, hints[f.name])
    definitions.update(extra)
    bases = (base,) if issubclass(base, DataclassConfig) else (DataclassConfig, base)
    model = pydantic.create_model(f"{source.__name__}RunConfig", __base__=bases, __module__=__name__, **definitions)
    model.dataclass_source = source
    model.config_keys = keys
    return model


def dataclass_default(source: type, name: str) -> Any:
    """The default of one dataclass field (for a Dagster field that stands in for it)."""
    f = next(f for f in dataclasses.fields(source) if f.name == name)
    return f.default if f.default is not MISSING else f.default_factory()


def _field(f: dataclasses.Field, annotation: Any) -> tuple[Any, FieldInfo]:
    config_type, choices = _config_type(annotation)
    description = description_of(f)
    if choices:
        description = f"{description or ''} ({' | '.join(choices)})".strip()
    if f.default is not MISSING:
        default = f.default
    elif f.default_factory is not MISSING:
        default = f.default_factory()
    else:
        return config_type, pydantic.Field(description=description)  # required
    if isinstance(default, tuple):
        default = list(default)
    return config_type, pydantic.Field(default, description=description)


def _config_type(annotation: Any) -> tuple[Any, list[str]]:
    """(type Dagster accepts, choices to name in the description)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is tuple:
        inner = {a for a in args if a is not Ellipsis}
        if len(inner) != 1:
            raise TypeError(f"only tuples of one item type become lists, not {annotation}")
        return list[_config_type(inner.pop())[0]], []
    if origin in (Union, types.UnionType) and types.NoneType in args:
        rest = [a for a in args if a is not types.NoneType]
        if len(rest) != 1:
            raise TypeError(f"unsupported union {annotation}")
        inner = rest[0]
        if get_origin(inner) is Literal:
            choices = get_args(inner)
            return type(choices[0]) | None, [*map(str, choices), "null"]
        return _config_type(inner)[0] | None, []
    return annotation, []


def _is_tuple(annotation: Any) -> bool:
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_is_tuple(a) for a in get_args(annotation))
    return get_origin(annotation) is tuple
