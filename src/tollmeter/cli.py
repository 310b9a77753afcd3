"""The `tollmeter` command."""

from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal
from typing import Sequence

from .business.plans import PRICING_MODELS
from .events import Usage
from .tables import format_table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tollmeter", description="Meter, price and cap LLM spend per tenant.")
    commands = parser.add_subparsers(dest="command", required=True)
    _prices_parser(commands)
    _report_parser(commands)
    _limits_parser(commands)
    _customers_parser(commands)
    _margin_parser(commands)
    _leaks_parser(commands)
    _dashboard_parser(commands)
    from .notifications.commands import register as notifications  # a server's webhooks

    notifications(commands)
    from .server.commands import register  # serve, keys, db, reprice

    register(commands)
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
    print(f"model:   {match.model}")
    print(f"source:  {match.source}")
    if args.service_tier:
        print(f"tier:    {args.service_tier}")
    print()
    print(format_table(["price", "USD"], match.sheet.describe()))
    print()
    print(f"usage:   {_usage_text(usage, args.web_searches)}")
    if quote is None:
        print("cost:    unpriced (the entry has no price for this usage)")
        return 0
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


# -- tollmeter dashboard -------------------------------------------------------------------------


def _dashboard_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("dashboard", help="open the dashboard on the embedded store (http://127.0.0.1:8731/)",
                            description="Serve the dashboard's pages over the embedded store, on 127.0.0.1 only, "
                                        "no key needed (needs the server extra: pip install 'tollmeter[server]').")
    _db_argument(p)
    p.add_argument("--port", type=int, default=8731, help="port on 127.0.0.1 (default 8731; 0: any free port)")
    p.set_defaults(run=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    try:
        from .dashboard.local import serve
    except ImportError as exc:
        raise CommandError(f"the dashboard needs the server extra (pip install 'tollmeter[server]'): {exc}") from None
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port: 0 to 65535, got {args.port}")
    store = _open_store(args)
    try:
        serve(store, args.port, announce=lambda line: print(line, flush=True))
    except OSError as exc:
        raise CommandError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}") from None
    finally:
        store.close()
    return 0


# -- tollmeter report ----------------------------------------------------------------------------


def _db_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH",
                   help="the embedded store (default: $TOLLMETER_DB or ~/.local/share/tollmeter/tollmeter.db)")


def _open_store(args: argparse.Namespace):
    from .store.store import Store, default_path

    path = args.db or default_path()
    if str(path) != ":memory:" and "://" not in str(path) and not os.path.exists(path):
        raise CommandError(f"no store at {path} (give --db PATH)")
    return Store(path)


def _report_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("report", help="per-tenant and per-model usage, cost and limits",
                            description="Calls, tokens and cost per tenant (with limits and % used) and per model.")
    _db_argument(p)
    p.add_argument("--since", metavar="WHEN",
                   help="only calls since: an ISO date or time (2026-11-01, 2026-11-26T09:00), or 24h, 7d")
    p.add_argument("--tenant", help="only this tenant")
    p.set_defaults(run=_report)


def _report(args: argparse.Namespace) -> int:
    since = _since(args.since) if args.since else None
    store = _open_store(args)
    try:
        tenants = store.usage(group_by=["tenant_id"], since=since, tenant_id=args.tenant)
        models = store.usage(group_by=["provider", "model"], since=since, tenant_id=args.tenant)
        rows = []
        for row in tenants:
            tenant = row["tenant_id"]
            states = store.limit_states(tenant) if tenant is not None else []
            binding = max(states, key=lambda s: s.spent_usd / s.limit.limit_usd if s.limit.limit_usd else 1,
                          default=None)
            limit = f"${binding.limit.limit_usd} {binding.limit.frequency}" if binding else "-"
            used = (f"{100 * binding.spent_usd / binding.limit.limit_usd:.0f}%"
                    if binding and binding.limit.limit_usd else ("100%" if binding else "-"))
            rows.append((tenant or "(none)", row["calls"], row["input_tokens"], row["output_tokens"],
                         _usd(row["cost_usd"]), row["unpriced"] or "", limit, used))
    finally:
        store.close()
    title = "since " + since.isoformat(timespec="minutes") if since else "all time"
    print(f"Usage per tenant ({title})\n")
    print(format_table(["tenant", "calls", "input tokens", "output tokens", "cost", "unpriced", "limit", "% used"],
                       rows, right=(1, 2, 3, 4, 5, 7)))
    print("\nPer model\n")
    print(format_table(["provider", "model", "calls", "input tokens", "output tokens", "cost"],
                       [(r["provider"], r["model"], r["calls"], r["input_tokens"], r["output_tokens"],
                         _usd(r["cost_usd"])) for r in models], right=(2, 3, 4, 5)))
    return 0


def _since(text: str):
    from datetime import datetime, timedelta, timezone

    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[:-1].isdigit() and text[-1] in units:
        return datetime.now(timezone.utc) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--since: expected a date, a time or 24h / 7d, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _usd(amount: Decimal) -> str:
    return f"${amount:.6f}" if amount else "$0"


# -- tollmeter limits ----------------------------------------------------------------------------


def _limits_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("limits", help="set, list and remove tenant spend limits",
                            description="Spend limits of the embedded store (tenant '*' is the default limit).")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser("set", help="set a limit: tollmeter limits set acme 50 --per month")
    s.add_argument("tenant", help="tenant id, or * for the default limit of tenants without one")
    s.add_argument("amount", help="USD")
    s.add_argument("--per", default="month", choices=["hour", "day", "month", "total"])
    _db_argument(s)
    s.set_defaults(run=_limits_set)
    ls = actions.add_parser("list", help="list limits and where each tenant stands")
    ls.add_argument("tenant", nargs="?")
    _db_argument(ls)
    ls.set_defaults(run=_limits_list)
    r = actions.add_parser("remove", help="remove a tenant's limit (all of them without --per)")
    r.add_argument("tenant")
    r.add_argument("--per", choices=["hour", "day", "month", "total"])
    _db_argument(r)
    r.set_defaults(run=_limits_remove)


def _frequency(per: str | None) -> str | None:
    return None if per is None else ("total" if per == "total" else f"per_{per}")


def _limits_set(args: argparse.Namespace) -> int:
    from .limits.keeper import usd_amount
    from .store.store import Store, default_path

    try:
        amount = usd_amount(args.amount)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    store = Store(args.db or default_path())
    try:
        store.set_limit(args.tenant, _frequency(args.per), amount)
    finally:
        store.close()
    print(f"{args.tenant}: ${amount} {_frequency(args.per)}")
    return 0


def _limits_list(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        limits = [lim for lim in store.all_limits() if args.tenant in (None, lim.tenant_id)]
        rows = []
        for lim in limits:
            state = next((s for s in store.limit_states(lim.tenant_id) if s.limit.frequency == lim.frequency), None)
            spent = state.spent_usd if state and lim.tenant_id != "*" else None
            resets = state.resets_at.isoformat(timespec="minutes") if state and state.resets_at else "-"
            rows.append((lim.tenant_id, lim.frequency, f"${lim.limit_usd}", _usd(spent) if spent is not None else "-",
                         f"{100 * spent / lim.limit_usd:.0f}%" if spent is not None and lim.limit_usd else "-",
                         resets))
    finally:
        store.close()
    if not rows:
        print("no limits" + (f" for {args.tenant}" if args.tenant else ""))
        return 0
    print(format_table(["tenant", "period", "limit", "spent", "% used", "resets at"], rows, right=(2, 3, 4)))
    return 0


def _limits_remove(args: argparse.Namespace) -> int:
    store = _open_store(args)
    try:
        removed = store.remove_limit(args.tenant, _frequency(args.per))
    finally:
        store.close()
    print(f"{args.tenant}: removed {removed} limit{'s' if removed != 1 else ''}")
    return 0 if removed else 1


# -- tollmeter customers | margin | leaks -----------------------------------------------------------


_PLAN_AMOUNTS = (("--unit-revenue", "unit_revenue_usd", "USD per run (per_unit, per_resolution, hybrid overage)"),
                 ("--base-revenue", "base_revenue_usd", "USD per month (flat, hybrid)"),
                 ("--seat-revenue", "seat_revenue_usd", "USD per seat per month (per_seat)"),
                 ("--markup", "markup", "usage_based: revenue = cost x (1 + markup); 0.3 is +30%%"),
                 ("--input-rate", "input_rate_mtok", "usage_based: USD per million input tokens"),
                 ("--output-rate", "output_rate_mtok", "usage_based: USD per million output tokens"))


def _customers_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("customers", help="set, list and show customers and their plans",
                            description="Customers (tenants) of the embedded store, their plans and seats over time "
                                        "(docs/margin.md).")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser(
        "set", help="create or update a customer: tollmeter customers set acme --plan pro --model per_unit "
                    "--unit-revenue 2",
        description="Create or update a customer. A plan (--plan-json, or --plan/--model and its amounts) and "
                    "--seats take effect from --from (a UTC day, today by default); earlier days keep theirs.")
    s.add_argument("tenant")
    s.add_argument("--name", help="the customer's name")
    s.add_argument("--plan-json", metavar="JSON", help='the plan as JSON: \'{"name": "pro", "pricing_model": '
                                                       '"flat", "base_revenue_usd": "300"}\'')
    s.add_argument("--plan", metavar="NAME", help="the plan's name (default: its pricing model)")
    s.add_argument("--model", choices=PRICING_MODELS, help="the plan's pricing model")
    for flag, _, text in _PLAN_AMOUNTS:
        s.add_argument(flag, metavar="X" if flag == "--markup" else "USD", help=text)
    s.add_argument("--included-units", type=int, metavar="N", help="runs included per month (hybrid)")
    s.add_argument("--seats", type=int, metavar="N", help="seats (per_seat)")
    s.add_argument("--from", dest="effective_from", metavar="YYYY-MM-DD", help="the first UTC day of the plan and seats")
    _format_argument(s, ("table", "json"))
    _db_argument(s)
    _project_argument(s)
    s.set_defaults(run=_customers_set)
    ls = actions.add_parser("list", help="list customers with the plan in force today")
    _format_argument(ls, ("table", "json"))
    _db_argument(ls)
    _project_argument(ls)
    ls.set_defaults(run=_customers_list)
    sh = actions.add_parser("show", help="a customer and its plan history")
    sh.add_argument("tenant")
    _format_argument(sh, ("table", "json"))
    _db_argument(sh)
    _project_argument(sh)
    sh.set_defaults(run=_customers_show)


def _margin_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("margin", help="revenue, cost and margin by tenant, run, agent, model, day, week or month",
                            description="Revenue, cost and margin over UTC days (this month to date by default), "
                                        "grouped; exact, and the groups add up to the total.")
    _db_argument(p)
    _project_argument(p)
    p.add_argument("--group-by", default="tenant", metavar="GROUPS",
                   help="comma-separated: tenant, run, agent, model, day, week, month (default tenant)")
    p.add_argument("--since", metavar="WHEN", help="first day: 2026-11-01, a time (its next midnight), or 7d")
    p.add_argument("--until", metavar="WHEN", help="the end (exclusive), same forms (default: tomorrow)")
    p.add_argument("--tenant", help="only this tenant")
    _format_argument(p, ("table", "json", "csv"))
    p.set_defaults(run=_margin)


def _leaks_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("leaks", help="customers, runs and agents losing money this month",
                            description="The leak rules over this month to date (UTC): cost over revenue, projected "
                                        "to cross, runs above their unit revenue, margin below a floor, cost spikes.")
    _db_argument(p)
    _project_argument(p)
    p.add_argument("--margin-floor-pct", metavar="PCT", help="flag margins below this %% of revenue (default 20)")
    p.add_argument("--spike-factor", metavar="X", help="a day over X times the trailing mean is a spike (default 3)")
    p.add_argument("--spike-window-days", type=int, metavar="N", help="the trailing mean's days (default 14)")
    p.add_argument("--spike-min-usd", metavar="USD", help="no spike below this day cost (default 1)")
    p.add_argument("--projection-days", type=int, metavar="N", help="days whose daily rate is projected (default 7)")
    p.add_argument("--tenant", metavar="ID", help="one customer's flags alone")
    _format_argument(p, ("table", "json", "csv"))
    p.set_defaults(run=_leaks)


def _format_argument(p: argparse.ArgumentParser, choices: tuple[str, ...]) -> None:
    p.add_argument("--format", default="table", choices=choices, help=f"default table ({', '.join(choices)})")


def _project_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", metavar="NAME",
                   help="a server project's data, with --db naming the server's database (postgresql://...)")


def _ledger(args: argparse.Namespace, *, create: bool = False):
    from .store.ledger import Ledger
    from .store.store import Store, default_path

    store = Store(args.db or default_path()) if create else _open_store(args)
    return Ledger(store.for_project(args.project) if args.project else store)


def _customer_plan(args: argparse.Namespace) -> dict | None:
    import json

    amounts = {key: getattr(args, flag[2:].replace("-", "_")) for flag, key, _ in _PLAN_AMOUNTS}
    amounts["included_units"] = args.included_units
    amounts = {k: v for k, v in amounts.items() if v is not None}
    if args.plan_json is not None:
        if args.plan is not None or args.model is not None or amounts:
            raise CommandError("give the plan as --plan-json or as --plan/--model and amounts, not both")
        try:
            plan = json.loads(args.plan_json)
        except ValueError as exc:
            raise CommandError(f"--plan-json: not JSON ({exc})") from None
        if not isinstance(plan, dict):
            raise CommandError("--plan-json: a JSON object, like '{\"name\": \"pro\", \"pricing_model\": ...}'")
        return plan
    if args.model is None:
        if args.plan is not None or amounts:
            raise CommandError("a plan needs its pricing model: --model " + "|".join(PRICING_MODELS))
        return None
    return {"name": args.plan or args.model, "pricing_model": args.model, **amounts}


def _customers_set(args: argparse.Namespace) -> int:
    from datetime import date

    from .business.plans import PlanError

    plan = _customer_plan(args)
    start = None
    if args.effective_from is not None:
        try:
            start = date.fromisoformat(args.effective_from)
        except ValueError:
            raise CommandError(f"--from: expected a day, YYYY-MM-DD, got {args.effective_from!r}") from None
    ledger = _ledger(args, create=True)
    try:
        customer = ledger.upsert_customer(args.tenant, name=args.name, plan=plan, seats=args.seats,
                                          effective_from=start)
    except PlanError as exc:
        raise CommandError(str(exc)) from None
    finally:
        ledger.store.close()
    _print_customers([customer], args.format, one=True)
    return 0


def _customers_list(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    try:
        customers = ledger.customers()
    finally:
        ledger.store.close()
    if not customers and args.format == "table":
        print("no customers (tollmeter customers set TENANT ...)")
        return 0
    _print_customers(customers, args.format)
    return 0


def _customers_show(args: argparse.Namespace) -> int:
    ledger = _ledger(args)
    try:
        customer = ledger.customer(args.tenant)
    finally:
        ledger.store.close()
    if customer is None:
        print(f"tollmeter customers: no customer {args.tenant!r}", file=sys.stderr)
        return 1
    _print_customers([customer], args.format, one=True)
    return 0


def _print_customers(customers: list, fmt: str, *, one: bool = False) -> None:
    import json

    from .business.report import customer_text, customers_table
    from .business.wire import customer_to_dict

    if fmt == "json":
        data = [customer_to_dict(c) for c in customers]
        print(json.dumps(data[0] if one else {"customers": data}, indent=2))
    else:
        print(customer_text(customers[0]) if one else customers_table(customers))


def _margin(args: argparse.Namespace) -> int:
    import json
    from datetime import timedelta

    from .business.plans import PlanError
    from .business.report import margin_csv, margin_table
    from .business.wire import parse_when

    groups = [g.strip() for g in args.group_by.split(",") if g.strip()]
    ledger = _ledger(args)
    try:
        report = ledger.margin(groups, since=parse_when(args.since, "--since"), until=parse_when(args.until, "--until"),
                               tenant_id=args.tenant)
    except PlanError as exc:
        raise CommandError(str(exc)) from None
    finally:
        ledger.store.close()
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, default=_json_number))
    elif args.format == "csv":
        sys.stdout.write(margin_csv(report))
    else:
        last = report.end - timedelta(days=1)
        span = f"{report.first}" + (f" to {last}" if last > report.first else "") if last >= report.first else "no days"
        print(f"Margin by {', '.join(report.group_by) or 'nothing (the total)'}: {span} (UTC)"
              + (f", tenant {args.tenant}" if args.tenant else "") + "\n")
        print(margin_table(report))
    return 0


def _json_number(value: object) -> object:
    """A count that a database summed as a Decimal (PostgreSQL's SUM of integers) as a JSON integer."""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _leaks(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime, timezone

    from .business.leaks import LeakSettings
    from .business.plans import PlanError, money
    from .business.report import leaks_csv, leaks_table

    given: dict = {}
    try:
        for name in ("margin_floor_pct", "spike_factor", "spike_min_usd"):
            if getattr(args, name) is not None:
                given[name] = money(getattr(args, name), "--" + name.replace("_", "-"))
        for name in ("spike_window_days", "projection_days"):
            if getattr(args, name) is not None:
                given[name] = getattr(args, name)
        settings = LeakSettings(**given)
    except PlanError as exc:
        raise CommandError(str(exc)) from None
    ledger = _ledger(args)
    try:
        found = ledger.leaks(settings, tenant_id=args.tenant)
    finally:
        ledger.store.close()
    if args.format == "json":
        print(json.dumps({"leaks": [leak.to_dict() for leak in found]}, indent=2, default=_json_number))
    elif args.format == "csv":
        sys.stdout.write(leaks_csv(found))
    elif not found:
        print(f"no leaks this month (to {datetime.now(timezone.utc).date()}, UTC)")
    else:
        print(f"{len(found)} leak{'s' if len(found) != 1 else ''} this month "
              f"(to {datetime.now(timezone.utc).date()}, UTC)\n")
        print(leaks_table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
