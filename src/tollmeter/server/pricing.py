"""Prices on the server: events that arrive unpriced are priced as they arrive, and
`tollmeter reprice` prices the stored events still unpriced (say, once a rate card has the
model) and adds their cost to their tenant's spend. Both use `Pricer`, the agent's pricing:
the bundled genai-prices data and the rate card given with `--prices`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from sqlalchemy import select, update

from ..events import LLMEvent, Usage
from ..limits.periods import period_keys
from ..pricing.fixedpoint import FixedPointSheet
from ..pricing.rates import RateSheet, usage_counts
from ..pricing.supplement import STRICT_KEYS
from ..store import schema

if TYPE_CHECKING:
    from ..pricing.pricer import Pricer
    from ..store.store import Store

logger = logging.getLogger("tollmeter.server")

_PRICE_FIELDS = ("cost_usd", "priced", "price_source", "price_model", "computed_cost_usd")


def load_pricer(prices: str | None, infer_prices: bool = True) -> Pricer:
    from ..pricing.pricer import Pricer
    from ..pricing.ratecard import RateCard

    return Pricer(RateCard.load(prices) if prices else None, infer_prices=infer_prices)


def _event(fields: Mapping[str, Any]) -> LLMEvent:
    """The LLMEvent the pricer needs, from a clean wire dict or a stored row."""
    timestamp = fields["timestamp"]
    if timestamp.tzinfo is None:  # SQLite gives UTC back without its offset
        timestamp = timestamp.replace(tzinfo=timezone.utc)
    return LLMEvent(
        provider=fields.get("provider"), model=fields.get("model"), request_model=fields.get("request_model"),
        endpoint=fields.get("endpoint"), usage=Usage.from_dict(fields.get("usage") or {}),
        tenant_id=fields.get("tenant_id"), timestamp=timestamp, service_tier=fields.get("service_tier"),
        web_search_requests=fields.get("web_search_requests"), error=fields.get("error"),
        partial=bool(fields.get("partial")), provider_cost_usd=fields.get("provider_cost_usd"),
        price_source=fields.get("price_source") if fields.get("provider_cost_usd") is not None else None,
        units=fields.get("units"),
    )


def price_on_arrival(pricer: Pricer, event: dict[str, Any]) -> bool:
    """Price a clean wire event in place; True if it has a price now."""
    priced = _event(event)
    pricer.price(priced)  # never raises
    for name in _PRICE_FIELDS:
        event[name] = getattr(priced, name)
    return priced.priced


#: Usage counts whose price depends on more than which counts are reported (an audio count
#: of 0 or not decides whether the supplement's rates apply): such events are priced alone.
_PRICED_APART = frozenset(STRICT_KEYS)


class BatchPricing:
    """Prices the unpriced events of one batch as `price_on_arrival` does, field for field,
    with each (provider, model, request model, tier, minute, counts reported) looked up once
    and the cost added up in integers (`FixedPointSheet`); events it cannot price that way
    (a reported cost, units, web searches, audio counts, no price, inconsistent counts) are
    priced by `price_on_arrival`."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer
        self._plans: dict[tuple[Any, ...], tuple[FixedPointSheet, str, str] | None] = {}

    def price(self, event: dict[str, Any]) -> bool:
        """Price a clean wire event in place; True if it has a price now."""
        usage = event.get("usage")
        if (usage and event.get("provider_cost_usd") is None and not event.get("units")
                and not event.get("web_search_requests") and _PRICED_APART.isdisjoint(usage)):
            moment = event["timestamp"]
            shape = (event.get("provider"), event.get("model"), event.get("request_model"),
                     event.get("service_tier"), int(moment.timestamp()) // 60, *usage)
            try:
                plan = self._plans[shape]
            except KeyError:
                plan = self._plans[shape] = self._plan(event)
            if plan is not None:
                cost = plan[0].cost(usage)
                if cost is not None:
                    event["cost_usd"] = event["computed_cost_usd"] = cost
                    event["priced"] = True
                    event["price_source"], event["price_model"] = plan[1], plan[2]
                    return True
        return price_on_arrival(self.pricer, event)

    def _plan(self, event: dict[str, Any]) -> tuple[FixedPointSheet, str, str] | None:
        usage = Usage.from_dict(event["usage"])
        if usage.is_empty():
            return None
        match, _ = self.pricer.match_counts(
            event.get("provider"), event.get("model"), usage_counts(usage), timestamp=event["timestamp"],
            service_tier=event.get("service_tier"), request_model=event.get("request_model"))
        if match is None:
            return None
        return _fixed_point(match.sheet), match.source, match.model


#: Compiled sheets by the sheet itself (kept alive in the value: an id is never reused).
_SHEETS: dict[int, FixedPointSheet] = {}


def _fixed_point(sheet: RateSheet) -> FixedPointSheet:
    found = _SHEETS.get(id(sheet))
    if found is None or found.sheet is not sheet:
        if len(_SHEETS) > 1024:
            _SHEETS.clear()
        found = _SHEETS[id(sheet)] = FixedPointSheet(sheet)
    return found


@dataclass
class RepriceResult:
    #: Unpriced events looked at.
    seen: int = 0
    #: Of those, priced now (by this run).
    priced: int = 0
    #: Cost added to the spend.
    added_usd: Decimal = Decimal(0)
    #: (provider, model) of the events still unpriced, with their count.
    still_unpriced: dict[tuple[str | None, str | None], int] = field(default_factory=dict)


def reprice(store: Store, pricer: Pricer, *, since: datetime | None = None, project: str | None = None,
            batch: int = 500) -> RepriceResult:
    """Price the stored events still unpriced, in transactions of `batch` events: each event
    is updated only if it is still unpriced (so concurrent runs never count one twice), and its
    cost goes to its tenant's spend in the same transaction."""
    e = schema.events
    result = RepriceResult()
    unpriced = e.c.priced.is_(False)
    if since is not None:
        unpriced = unpriced & (e.c.timestamp >= since)
    with store.transaction() as conn:
        query = select(e.c.project_id).where(unpriced).distinct()
        projects = [project] if project is not None else sorted(r[0] for r in conn.execute(query))
    columns = [e.c.event_id, e.c.timestamp, e.c.tenant_id, e.c.provider, e.c.model, e.c.request_model,
               e.c.endpoint, e.c.usage, e.c.service_tier, e.c.web_search_requests, e.c.error, e.c.partial,
               e.c.provider_cost_usd, e.c.price_source, e.c.units, e.c.run_id, e.c.agent_id, e.c.input_tokens,
               e.c.output_tokens, e.c.cache_read_tokens, e.c.cost_usd, e.c.priced]
    for name in projects:
        view = store.for_project(name)
        after = ""
        while True:
            with view.transaction() as conn:
                rows = conn.execute(select(*columns).where(e.c.project_id == name, unpriced, e.c.event_id > after)
                                    .order_by(e.c.event_id).limit(batch)).mappings().all()
                if not rows:
                    break
                totals: dict[tuple[str, str], Decimal] = {}
                before, after_pricing = [], []  # the rollups take the old row out, the priced one in
                for row in rows:
                    result.seen += 1
                    event = _event(row)
                    pricer.price(event)
                    if not event.priced:
                        key = (row["provider"], row["model"] or row["request_model"])
                        result.still_unpriced[key] = result.still_unpriced.get(key, 0) + 1
                        continue
                    # With its timestamp: one partition's index on PostgreSQL, not each month's.
                    done = conn.execute(update(e).where(e.c.project_id == name, e.c.event_id == row["event_id"],
                                                        e.c.timestamp == row["timestamp"], e.c.priced.is_(False))
                                        .values({f: getattr(event, f) for f in _PRICE_FIELDS}))
                    if done.rowcount != 1:
                        continue  # priced meanwhile by another run
                    result.priced += 1
                    before.append(row)
                    after_pricing.append({**row, "cost_usd": event.cost_usd, "priced": True})
                    cost = event.cost_usd or Decimal(0)
                    result.added_usd += cost
                    if row["tenant_id"] is not None and cost:
                        for key in period_keys(event.timestamp):
                            totals[(row["tenant_id"], key)] = totals.get((row["tenant_id"], key), Decimal(0)) + cost
                view.add_spend(conn, totals)
                view.add_to_rollups(conn, before, sign=-1)
                view.add_to_rollups(conn, after_pricing)
                after = rows[-1]["event_id"]
    if result.priced:
        logger.info("repriced %d events, %s USD added to the spend", result.priced, result.added_usd)
    return result
