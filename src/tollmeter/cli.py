"""The `tollmeter` command."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from typing import Sequence

from .events import Usage
from .tables import format_table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollmeter", description="Meter, price and cap LLM spend per tenant.")
    commands = parser.add_subparsers(dest="command", required=True)
    _prices_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CommandError as exc:
        print(f"tollmeter {args.command}: {exc}", file=sys.stderr)
        return 2


class CommandError(Exception):
    pass


# -- tollmeter prices ----------------------------------------------------------------------------


def _prices_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "prices",
        help="show a model's prices and the cost of some usage; check a rate card",
        description="Show which price entry a model matches, its rates, and what the given usage costs.",
    )
    p.add_argument("model", nargs="?", help="model id as the provider reports it, e.g. gpt-4o-2024-08-06")
    p.add_argument("--provider", help="provider id (openai, anthropic, aws, openrouter, google, ...)")
    p.add_argument("--input", type=int, default=0, metavar="N", help="input tokens, cache reads and writes included")
    p.add_argument("--output", type=int, default=0, metavar="N", help="output tokens, reasoning included")
    p.add_argument("--cache-read", type=int, metavar="N", help="of the input: read from a cache")
    p.add_argument("--cache-write", type=int, metavar="N", help="of the input: written to a cache")
    p.add_argument("--cache-write-1h", type=int, metavar="N", help="of the cache writes: with a 1-hour TTL")
    p.add_argument("--reasoning", type=int, metavar="N", help="of the output: reasoning tokens")
    p.add_argument("--web-searches", type=int, metavar="N", help="billed web search requests")
    p.add_argument("--service-tier", help="as the response reports it: default, flex, priority, ...")
    p.add_argument("--rates", metavar="FILE", help="apply this rate card")
    p.add_argument("--check", metavar="FILE", help="validate a rate card and list its entries")
    p.add_argument("--refresh", action="store_true",
                   help="fetch the newest genai-prices data first (the bundled data is kept if that fails)")
    p.set_defaults(run=_prices)


def _prices(args: argparse.Namespace) -> int:
    from .pricing.pricer import Pricer
    from .pricing.ratecard import RateCard, RateCardError

    if args.check:
        try:
            card = RateCard.load(args.check)
        except RateCardError as exc:
            raise CommandError(str(exc)) from None
        rows = [(e.origin, e.label, _rates_text(e.sheet) if e.sheet else "bundled",
                 f"{(e.discount * 100).normalize():f}%" if e.discount else "") for e in card.entries]
        print(format_table(["entry", "matches", "prices (USD)", "discount"], rows))
        print(f"\n{args.check}: {len(card)} entries, valid")
        return 0
    if not args.model:
        raise CommandError("give a MODEL, or --check FILE")
    try:
        pricer = Pricer(RateCard.load(args.rates) if args.rates else None)
    except RateCardError as exc:
        raise CommandError(str(exc)) from None
    if args.refresh:
        fresh = pricer.bundled.refresh()
        print(("refreshed: " if fresh else "refresh failed, using: ") + pricer.bundled.source)
    match = pricer.match(args.provider, args.model, service_tier=args.service_tier)
    if match is None:
        raise CommandError(
            f"no price for {args.model!r}" + (f" from {args.provider!r}" if args.provider else "")
            + "; add it to a rate card (see docs/pricing.md)"
        )
    usage = Usage(input_tokens=args.input, output_tokens=args.output, cache_read_tokens=args.cache_read,
                  cache_write_tokens=args.cache_write, cache_write_1h_tokens=args.cache_write_1h,
                  reasoning_tokens=args.reasoning)
    quote = pricer.quote(args.provider, args.model, usage, service_tier=args.service_tier,
                         web_searches=args.web_searches)
    assert quote is not None
    print(f"model:   {match.model}")
    print(f"source:  {match.source}")
    if args.service_tier:
        print(f"tier:    {args.service_tier}")
    print()
    print(format_table(["price", "USD"], match.sheet.describe()))
    print()
    print(f"usage:   {_usage_text(usage, args.web_searches)}")
    print(f"cost:    ${_money(quote.cost_usd)}")
    return 0


def _rates_text(sheet) -> str:
    return ", ".join(f"{key}={value}" for key, value in sheet.describe())


def _usage_text(usage: Usage, web_searches: int | None) -> str:
    parts = [f"{name.replace('_tokens', '').replace('_', ' ')} {value:,}" for name, value in usage.to_dict().items()]
    if web_searches:
        parts.append(f"web searches {web_searches}")
    return ", ".join(parts) or "none"


def _money(amount: Decimal) -> str:
    return f"{amount.normalize():f}" if amount else "0"


if __name__ == "__main__":
    sys.exit(main())
