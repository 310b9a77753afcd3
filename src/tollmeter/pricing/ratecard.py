"""Your own prices: a rate card merged model by model over the bundled data.

```yaml
models:
  - model: gpt-4o                   # a model id, or a glob: "ft:gpt-4o-mini:acme:*"
    provider: openai                # optional: any provider when left out
    input_mtok: 2.25                # USD per million tokens
    output_mtok: 9.00
    cache_read_mtok: 1.125
  - model: llama-3.1-70b-instruct   # a self-hosted model, priced from its GPU cost
    provider: self-hosted
    input_mtok: 0.35
    output_mtok: 0.35
  - model: "*"                      # a negotiated discount on everything else from Anthropic
    provider: anthropic
    discount: 0.15
```

An entry with prices replaces the bundled prices of the models it matches; an entry with only
a `discount` takes that fraction off the bundled prices (with both, off its own). Entries are
tried in order; the first that matches wins. Price keys are genai-prices' (`input_mtok`,
`output_mtok`, `cache_read_mtok`, `cache_write_mtok`, `cache_write_1h_mtok`,
`input_audio_mtok`, `web_searches_kcount`, `requests_kcount`, ...); a price may be tiered:
`{base: 1.25, tiers: [{start: 200000, price: 2.5}]}` (the tier applies above `start` input
tokens). A file may be YAML (with PyYAML installed), JSON or TOML; a dict or list in code works
too. Mistakes fail at start-up with the file, line (YAML) and key.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping, Sequence

from genai_prices.types import Tier, TieredPrices

from ..config import ConfigError
from .rates import RateSheet, price_keys

_ENTRY_KEYS = {"model", "provider", "discount", "note"}
_LINE = "__line__"


class RateCardError(ConfigError):
    """A rate card that cannot be used; the message names the file, line or key."""


@dataclass(frozen=True)
class RateEntry:
    model: str
    provider: str | None
    sheet: RateSheet | None
    discount: Decimal | None
    #: Where the entry was written: "rates.yaml:12" or "rates.json models[3]".
    origin: str

    def matches(self, provider: str | None, model: str) -> bool:
        if self.provider is not None and self.provider != provider:
            return False
        pattern = self.model
        if any(c in pattern for c in "*?["):
            return fnmatch.fnmatchcase(model.lower(), pattern.lower())
        return model.lower() == pattern.lower()

    @property
    def label(self) -> str:
        return f"{self.provider}/{self.model}" if self.provider else self.model


class RateCard:
    def __init__(self, entries: Sequence[RateEntry], source: str = "rate card") -> None:
        self.entries = list(entries)
        self.source = source

    def find(self, provider: str | None, model: str) -> RateEntry | None:
        for entry in self.entries:
            if entry.matches(provider, model):
                return entry
        return None

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | Sequence[Any]) -> RateCard:
        """From a file path, or from a dict (`{"models": [...]}`) or list of entries."""
        if isinstance(source, (str, Path)):
            path = Path(source)
            data = _read_file(path)
            name = path.name
        else:
            data, name = source, "rate card"
        if isinstance(data, Mapping):
            unknown = set(data) - {"models", _LINE}
            if unknown:
                raise RateCardError(f"{name}: unknown top-level key {sorted(unknown)[0]!r}; expected 'models'")
            data = data.get("models")
        if not isinstance(data, (list, tuple)):
            raise RateCardError(f"{name}: expected a list of models under 'models'")
        entries = [_entry(item, f"{name} models[{i}]", name) for i, item in enumerate(data)]
        return cls(entries, source=name)


def _read_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RateCardError(f"cannot read rate card {path}: {exc.strerror or exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return _load_yaml(text, path)
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise RateCardError(f"{path.name}: TOML rate cards need Python 3.11+; use YAML or JSON") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RateCardError(f"{path.name}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RateCardError(f"{path.name}:{exc.lineno}: invalid JSON: {exc.msg}") from None


def _load_yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise RateCardError(
            f"{path.name}: YAML rate cards need PyYAML (pip install 'tollmeter[yaml]'); or use JSON or TOML"
        ) from None

    class LineLoader(yaml.SafeLoader):
        pass

    def mapping_with_line(loader: Any, node: Any) -> dict:
        mapping = loader.construct_mapping(node, deep=True)
        mapping[_LINE] = node.start_mark.line + 1
        return mapping

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping_with_line)
    try:
        return yaml.load(text, Loader=LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise RateCardError(f"{path.name}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None


def _entry(item: Any, where: str, name: str) -> RateEntry:
    if not isinstance(item, Mapping):
        raise RateCardError(f"{where}: expected a mapping with 'model' and prices")
    line = item.get(_LINE)
    if line is not None:
        where = f"{name}:{line}"
    model = item.get("model")
    if not isinstance(model, str) or not model:
        raise RateCardError(f"{where}: 'model' must be a model id or a glob like 'ft:gpt-4o-mini:*'")
    provider = item.get("provider")
    if provider is not None and not isinstance(provider, str):
        raise RateCardError(f"{where}: 'provider' must be a string")
    valid = price_keys()
    prices: dict[str, Any] = {}
    for key, value in item.items():
        if key in _ENTRY_KEYS or key == _LINE:
            continue
        if key not in valid:
            close = sorted(k for k in valid if key.split("_")[0] in k)[:3]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise RateCardError(f"{where}: {model}: unknown price key {key!r}{hint}")
        prices[key] = _price(value, f"{where}: {model}.{key}")
    discount = None
    if "discount" in item:
        discount = _decimal(item["discount"], f"{where}: {model}.discount")
        if discount >= 1:
            raise RateCardError(f"{where}: {model}.discount must be a fraction below 1, e.g. 0.15 for 15%")
    if not prices and discount is None:
        raise RateCardError(f"{where}: {model}: give prices (e.g. input_mtok, output_mtok) or a discount")
    return RateEntry(model, provider, RateSheet(prices) if prices else None, discount, where)


def _price(value: Any, where: str) -> Decimal | TieredPrices:
    if isinstance(value, Mapping):
        unknown = set(value) - {"base", "tiers", _LINE}
        if unknown or "base" not in value:
            raise RateCardError(f"{where}: a tiered price is {{base: ..., tiers: [{{start: ..., price: ...}}]}}")
        tiers = []
        previous = -1
        for i, tier in enumerate(value.get("tiers") or []):
            if not isinstance(tier, Mapping) or not {"start", "price"} <= set(tier):
                raise RateCardError(f"{where}.tiers[{i}]: expected start and price")
            start = tier["start"]
            if not isinstance(start, int) or isinstance(start, bool) or start <= previous:
                raise RateCardError(f"{where}.tiers[{i}].start: expected increasing whole token counts")
            previous = start
            tiers.append(Tier(start=start, price=_decimal(tier["price"], f"{where}.tiers[{i}].price")))
        return TieredPrices(base=_decimal(value["base"], f"{where}.base"), tiers=tiers)
    return _decimal(value, where)


def _decimal(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise RateCardError(f"{where}: expected a number of USD, got {value!r}")
    try:
        # str() first: a float from YAML/JSON becomes the decimal it was written as (0.35, not 0.34999...)
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise RateCardError(f"{where}: expected a number of USD, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise RateCardError(f"{where}: expected a number >= 0, got {value!r}")
    return amount
