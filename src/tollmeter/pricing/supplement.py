"""The tollmeter supplement: rates the bundled price data lacks, for quantities that must not be
priced at another quantity's rate.

A call's usage may report a quantity the matched prices have no rate for. For most quantities
the price data's convention holds: the count stays inside its parent and is charged at the
parent's rate (image tokens at the input rate, as most vendors bill them). Audio tokens are
different at the vendors in `AUDIO_APART`: OpenAI bills every audio token at audio rates of its
own, 4 to 16 times the text rate, so an audio count charged at the text rate would understate
the call by up to 94 %. When such a vendor's sheet has no audio rate, the rate comes from here
(the event's price source then ends in `+ tollmeter supplement ...`); when this table has none
either, the event is left unpriced with a warning that names the quantity (add the rate to your
rate card: `input_audio_mtok`, `output_audio_mtok`), never priced at the text rate.

Each rate below is the vendor's list price, USD per million tokens, as published on its pricing
page on the date in `SOURCE`; only rates missing from genai-prices are kept. A rate card entry
with prices is taken as complete: the supplement never adds to it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

#: Where the rates below come from; it ends the price source of an event priced with them.
SOURCE = "tollmeter supplement 2026-12 (vendor list prices)"

#: Usage keys (genai-prices') that a vendor in `AUDIO_APART` never bills at another key's rate.
STRICT_KEYS = ("input_audio_tokens", "output_audio_tokens")

#: genai-prices provider ids whose audio tokens always have rates of their own.
AUDIO_APART = frozenset({"openai", "azure"})

#: Model id (a reported model id starts with it: dated snapshots included) -> price key -> USD.
#: Most specific first: the first prefix that matches wins.
RATES: tuple[tuple[str, Mapping[str, Decimal]], ...] = (
    # gpt-4o-audio-preview-2024-10-01 launched at $100 / $200 per million audio tokens.
    ("gpt-4o-audio-preview-2024-10-01", {"input_audio_mtok": Decimal("100"), "output_audio_mtok": Decimal("200")}),
    # Later snapshots (2024-12-17, 2025-06-03): text $2.50 / $10, audio $40 / $80.
    ("gpt-4o-audio-preview", {"input_audio_mtok": Decimal("40"), "output_audio_mtok": Decimal("80")}),
    # Text $0.15 / $0.60, audio $10 / $20.
    ("gpt-4o-mini-audio-preview", {"input_audio_mtok": Decimal("10"), "output_audio_mtok": Decimal("20")}),
    # Text in $0.60, audio out $12 (genai-prices' output rate is the audio rate already).
    ("gpt-4o-mini-tts", {"output_audio_mtok": Decimal("12")}),
)


def rates_for(*model_ids: str | None) -> Mapping[str, Decimal]:
    """The supplement's rates for the first of `model_ids` (the reported id, then the price
    data's) that one of its entries names; {} when none does."""
    for model in model_ids:
        if not model:
            continue
        name = model.rsplit("/", 1)[-1].lower()  # "openai/gpt-4o-audio-preview" -> the model's own id
        for prefix, rates in RATES:
            if name.startswith(prefix):
                return rates
    return {}
