"""What `autotag serve` is started with (the CLI fills it; tests build it directly)."""

import os
from dataclasses import dataclass, field

TOKEN_ENV = "AUTOTAG_API_TOKEN"
DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the service is a decision, not a default
DEFAULT_PORT = 8000
DEFAULT_MAX_ITEMS = 256
DEFAULT_MAX_FIELD_CHARS = 20_000  # per text field: far above any model input (≤ 704 chars), far below abuse


@dataclass(frozen=True)
class ServeSettings:
    schemes: tuple[str, ...]
    budgets: dict[str, float | None]  # scheme → inference budget (corpus.yaml), for a decision made here
    tracking_uri: str
    datasets_dir: str  # lake/datasets: the test splits a stale decision is re-measured on
    pins: dict[str, str] = field(default_factory=dict)  # scheme → "kind" or "kind:version"
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_items: int = DEFAULT_MAX_ITEMS
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    max_batch_items: int = 256  # items the batcher gives the model at once
    poll_s: float = 30.0  # how often the registry is asked whether the serving model moved

    @property
    def max_body_bytes(self) -> int:
        """The largest valid request: every field of every item at its limit, each character JSON-escaped
        (\\uXXXX, 6 bytes), plus ids and syntax. Bodies past it are refused before they are parsed."""
        return self.max_items * (4 * 6 * self.max_field_chars + 1024) + 4096

    def __post_init__(self) -> None:
        if not self.schemes:
            raise ValueError("serve needs at least one scheme")
        unknown = sorted(set(self.pins) - set(self.schemes))
        if unknown:
            raise ValueError(f"--pin names schemes {unknown} that are not served; serving {list(self.schemes)}")
        for name, value in (("max_items", self.max_items), ("max_field_chars", self.max_field_chars),
                            ("max_batch_items", self.max_batch_items)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{name} must be ≥ 1, got {value}")
        if self.poll_s <= 0:
            raise ValueError(f"poll_s must be > 0, got {self.poll_s}")


def api_token() -> str | None:
    """$AUTOTAG_API_TOKEN (stripped), None when unset or empty. Never logged."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def parse_pins(values: list[str]) -> dict[str, str]:
    """["p0_newcar=linear:3", …] → {"p0_newcar": "linear:3"}; the pin itself is checked by parse_pin."""
    from dagster_autotag.predict.serving import parse_pin

    pins = {}
    for value in values:
        scheme, eq, pin = (part.strip() for part in value.partition("="))
        if not eq or not scheme:
            raise ValueError(f"a pin is SCHEME=KIND or SCHEME=KIND:VERSION (e.g. p0_newcar=linear:3), got {value!r}")
        if scheme in pins:
            raise ValueError(f"scheme {scheme!r} pinned twice")
        parse_pin(pin)
        pins[scheme] = pin
    return pins
