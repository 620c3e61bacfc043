"""Model prices and the token-to-dollar calculation, reproducing ccusage 20.

The built-in table (`pricing.json`, beside this module) is the Claude part of the price
data ccusage 20.0.24 ships: the LiteLLM snapshot embedded in its native binary, with
ccusage's own built-in Claude prices laid over it. Prices are USD per token.

ccusage's arithmetic, reproduced by `cost`:

* each token kind is priced on its own; a kind whose count in ONE entry exceeds 200,000
  pays the model's "above 200k" price for the excess (only where the model has one);
* cache writes split by TTL when the usage has a `cache_creation` breakdown: 5-minute
  writes at the cache-write price, 1-hour writes at twice the input price; without the
  breakdown every cache write is priced as a 5-minute one;
* `speed == "fast"` multiplies the whole entry by the model's fast multiplier.

Model names are looked up like ccusage: the exact key, else every key that contains the
name (or is contained in it) at a word boundary, also after normalising `.`/`@` to `-`;
the longest such key wins, ties to the alphabetically first. A date suffix (`-20250514`)
may be dropped or added by that match; any other version number may not, so
`claude-opus-4` never prices `claude-opus-4-1`.

Not reproduced: ccusage's second price source, an embedded models.dev snapshot it
consults for some exact names LiteLLM lacks (before the fuzzy match) and for names nothing
else prices, with its own whole-request long-context tiers (e.g. `claude-opus-4-8-fast`,
`claude-opus-4-7-thinking`, `claude-opus-4-8@eu`, `claude-3-7-sonnet-latest`). Claude
Code records the API's model ids, which this table prices as ccusage does; price any
other name with an override file. Non-Claude models are not in the table.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import msgspec

__all__ = [
    "PRICING_ENV",
    "ModelPrice",
    "Pricing",
    "PricingError",
    "TokenUsage",
    "cost",
    "load_pricing",
    "tiered_cost",
    "tokens_cost",
]

PRICING_ENV = "EVENTSTORE_PRICING"
TIER_THRESHOLD = 200_000
# Anthropic pins model snapshots with an 8-digit date suffix; only that suffix may differ
# between a name and the key that prices it.
_DATE_SUFFIX_DIGITS = 8
_FINGERPRINT_VERSION = b"eventstore-pricing-v1\n"


class PricingError(Exception):
    """A pricing file is missing, unreadable or malformed."""


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """USD per token for one model; `*_above_200k` is None where the model has no tier."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    input_above_200k: float | None = None
    output_above_200k: float | None = None
    cache_write_5m_above_200k: float | None = None
    cache_write_1h_above_200k: float | None = None
    cache_read_above_200k: float | None = None
    fast_multiplier: float = 1.0


_PRICE_FIELDS = frozenset(ModelPrice.__struct_fields__)


class TokenUsage(Protocol):
    """What `cost` reads; `projections.usage_entries.UsageEntry` provides it."""

    input_tokens: int
    output_tokens: int
    cache_creation_5m_tokens: int
    cache_creation_1h_tokens: int
    cache_read_tokens: int
    speed: str | None


class Pricing:
    """An effective price table with ccusage-compatible model name lookup."""

    __slots__ = ("_fingerprint", "_lookups", "models")

    def __init__(self, models: Mapping[str, ModelPrice]) -> None:
        self.models: dict[str, ModelPrice] = dict(models)
        self._lookups: dict[str, ModelPrice | None] = {}
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"Pricing({len(self.models)} models, fingerprint={self.fingerprint})"

    @property
    def fingerprint(self) -> str:
        """A short hash of the effective table: a projection rebuilds when it changes."""
        if self._fingerprint is None:
            table = {name: msgspec.to_builtins(price) for name, price in self.models.items()}
            digest = hashlib.sha256(_FINGERPRINT_VERSION)
            digest.update(msgspec.json.encode(table, order="sorted"))
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    def lookup(self, model: str | None) -> ModelPrice | None:
        """The price for a model name as ccusage would resolve it, or None if unpriced."""
        if not model:
            return None
        try:
            return self._lookups[model]
        except KeyError:
            price = self.models.get(model)
            if price is None:
                key = _best_fuzzy_key(model, self.models)
                price = None if key is None else self.models[key]
            self._lookups[model] = price
            return price

    def resolve(self, model: str | None) -> str | None:
        """The table key that prices `model` (for reports and debugging), or None."""
        if not model:
            return None
        if model in self.models:
            return model
        return _best_fuzzy_key(model, self.models)


def tiered_cost(tokens: int, base: float, above: float | None) -> float:
    """Price `tokens` at `base`, the part beyond 200k at `above` when the model has a tier."""
    if tokens == 0:
        return 0.0
    if above is not None and tokens > TIER_THRESHOLD:
        return TIER_THRESHOLD * base + (tokens - TIER_THRESHOLD) * above
    return tokens * base


def cost(
    pricing: Pricing, model: str | None, usage: TokenUsage | Mapping[str, Any]
) -> float | None:
    """USD for one usage entry exactly as ccusage 20 computes it; None when the model is unpriced.

    `usage` is a usage entry (anything shaped like `TokenUsage`) or a raw Anthropic
    `message.usage` mapping.
    """
    price = pricing.lookup(model)
    if price is None:
        return None
    if not isinstance(usage, msgspec.Struct) and isinstance(usage, Mapping):  # a struct: no slow ABC check
        tokens = _tokens_from_mapping(usage)
    else:
        tokens = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_creation_5m_tokens,
            usage.cache_creation_1h_tokens,
            usage.cache_read_tokens,
            usage.speed,
        )
    input_tokens, output_tokens, write_5m, write_1h, read, speed = tokens
    return tokens_cost(price, input_tokens, output_tokens, write_5m, write_1h, read, speed == "fast")


def tokens_cost(price: ModelPrice, input_tokens: int, output_tokens: int, write_5m: int, write_1h: int, read: int,
                fast: bool) -> float:
    """`cost` for a model's price and token counts (a rebuild prices ~100,000 entries this way)."""
    multiplier = price.fast_multiplier if fast else 1.0
    # Same order of additions as ccusage, so float results agree to the last bit.
    return (
        tiered_cost(input_tokens, price.input, price.input_above_200k)
        + tiered_cost(output_tokens, price.output, price.output_above_200k)
        + tiered_cost(write_5m, price.cache_write_5m, price.cache_write_5m_above_200k)
        + tiered_cost(write_1h, price.cache_write_1h, price.cache_write_1h_above_200k)
        + tiered_cost(read, price.cache_read, price.cache_read_above_200k)
    ) * multiplier


def load_pricing(override: Path | None = None) -> Pricing:
    """The built-in table, with `$EVENTSTORE_PRICING` and then `override` merged over it.

    An override file has the built-in shape, `{"models": {NAME: {FIELD: PRICE, ...}}}`.
    For a model already in the table only the fields given change; a new model needs
    `input` and `output`, and its other prices default as ccusage defaults them
    (cache write 1.25x input, cache read 0.1x input, 1-hour cache write 2x input).
    """
    table = _parse_table(_builtin_bytes(), "built-in pricing.json", complete=True)
    paths = [Path(p) for p in (os.environ.get(PRICING_ENV), override) if p]
    for path in paths:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PricingError(f"cannot read pricing file {path}: {exc.strerror or exc}") from exc
        _merge(table, _parse_table(raw, str(path), complete=False), str(path))
    return Pricing({name: _to_price(fields) for name, fields in table.items()})


def _builtin_bytes() -> bytes:
    return resources.files(__package__).joinpath("pricing.json").read_bytes()


def _parse_table(raw: bytes, origin: str, *, complete: bool) -> dict[str, dict[str, float | None]]:
    try:
        doc = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise PricingError(f"{origin}: not valid JSON: {exc}") from exc
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, dict):
        raise PricingError(f'{origin}: expected an object with a "models" object')
    table: dict[str, dict[str, float | None]] = {}
    for name, fields in models.items():
        if not isinstance(fields, dict):
            raise PricingError(f"{origin}: model {name!r}: expected an object of prices")
        unknown = sorted(set(fields) - _PRICE_FIELDS)
        if unknown:
            raise PricingError(f"{origin}: model {name!r}: unknown field(s) {', '.join(unknown)}")
        for field, value in fields.items():
            ok_null = field.endswith("_above_200k")
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) or (ok_null and value is None)
            ):
                raise PricingError(f"{origin}: model {name!r}: {field} must be a number")
            if value is not None and value < 0:
                raise PricingError(f"{origin}: model {name!r}: {field} must not be negative")
        if complete:
            _require_input_output(fields, name, origin)
        table[name] = {k: (None if v is None else float(v)) for k, v in fields.items()}
    return table


def _merge(
    table: dict[str, dict[str, float | None]],
    layer: Mapping[str, Mapping[str, float | None]],
    origin: str,
) -> None:
    for name, fields in layer.items():
        if name in table:
            table[name] = {**table[name], **fields}
        else:
            _require_input_output(fields, name, origin)
            table[name] = dict(fields)


def _require_input_output(fields: Mapping[str, Any], name: str, origin: str) -> None:
    missing = [f for f in ("input", "output") if fields.get(f) is None]
    if missing:
        raise PricingError(f"{origin}: model {name!r}: missing {', '.join(missing)}")


def _to_price(fields: Mapping[str, float | None]) -> ModelPrice:
    full = dict(fields)
    base = full["input"]
    assert base is not None
    full.setdefault("cache_write_5m", base * 1.25)
    full.setdefault("cache_read", base * 0.1)
    full.setdefault("cache_write_1h", base * 2.0)
    above = full.get("input_above_200k")
    if above is not None:
        full.setdefault("cache_write_1h_above_200k", above * 2.0)
    full.setdefault("fast_multiplier", 1.0)
    return msgspec.convert(full, ModelPrice)


def _tokens_from_mapping(usage: Mapping[str, Any]) -> tuple[int, int, int, int, int, str | None]:
    breakdown = usage.get("cache_creation")
    if isinstance(breakdown, Mapping):
        write_5m = int(breakdown.get("ephemeral_5m_input_tokens") or 0)
        write_1h = int(breakdown.get("ephemeral_1h_input_tokens") or 0)
    else:
        write_5m, write_1h = int(usage.get("cache_creation_input_tokens") or 0), 0
    return (
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        write_5m,
        write_1h,
        int(usage.get("cache_read_input_tokens") or 0),
        usage.get("speed"),
    )


# --- ccusage's fuzzy model-name match -------------------------------------------------


def _best_fuzzy_key(model: str, keys: Iterable[str]) -> str | None:
    normalised = _normalise(model)
    best: str | None = None
    for key in keys:
        if not _key_matches(key, model, normalised):
            continue
        if best is None or len(key) > len(best) or (len(key) == len(best) and key < best):
            best = key
    return best


def _normalise(name: str) -> str:
    return name.replace(".", "-").replace("@", "-")


def _key_matches(key: str, model: str, normalised_model: str) -> bool:
    if _contains_at_boundary(model, key) or _contains_at_boundary(key, model):
        return True
    normalised_key = _normalise(key)
    return _contains_at_boundary(normalised_model, normalised_key) or _contains_at_boundary(
        normalised_key, normalised_model
    )


def _is_word_char(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


def _contains_at_boundary(value: str, key: str) -> bool:
    if not key:
        return False
    start = value.find(key)
    while start != -1:
        end = start + len(key)
        if (start == 0 or not _is_word_char(value[start - 1])) and _suffix_allows(key, value[end:]):
            return True
        start = value.find(key, end)  # non-overlapping, like Rust's match_indices
    return False


def _suffix_allows(key: str, suffix: str) -> bool:
    if not suffix:
        return True
    if _is_word_char(suffix[0]):
        return False
    return not _suffix_is_other_version(key, suffix)


def _suffix_is_other_version(key: str, suffix: str) -> bool:
    """True when `suffix` continues a numeric version (`claude-opus-4` + `-1`), not a date."""
    if not key[-1].isascii() or not key[-1].isdigit() or suffix[0] not in "-.":
        return False
    rest = suffix[1:]
    digits = 0
    while digits < len(rest) and rest[digits].isascii() and rest[digits].isdigit():
        digits += 1
    if digits == 0:
        return False
    after = rest[digits] if digits < len(rest) else None
    is_date = digits == _DATE_SUFFIX_DIGITS and (after is None or not _is_word_char(after))
    return not is_date
