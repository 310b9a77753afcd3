"""The rules, evaluated for one project: which (rule, tenant, subject, period) hold now, which
fired before and no longer hold. Each fires once: the replica whose INSERT wins the row's
primary key queues the message (in the same transaction), and the one whose UPDATE still finds
it firing queues the "resolved" message. Any number of replicas may evaluate at once.

- limit: a tenant's settled spend in a limit's period reached `threshold`% of the limit
  (subject "per_day:80", period the limit's: "per_day:2026-12-05"); resolved when spend is
  below it again (a raised limit), the limit is removed, or the period ends.
- refusals: at least `count` leases refused to a tenant in the last `window` minutes (subject
  "10/5m", period the UTC hour the burst began; a burst that goes on stays one notification);
  resolved when the window holds fewer.
- leak: a leak flag (business/leaks.py) of this month (subject: its rule and a digest of what
  it names, or "<rule>:runs" for all of a customer's flagged runs together; period "2026-12");
  resolved when it is no longer flagged or the month ends.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from ..limits.periods import period_key, period_keys
from ..money import decimal_text, usd_text
from ..store import schema
from . import endpoints as ep
from .messages import payload
from .outbox import enqueue
from .refusals import _insert, refusals_since

if TYPE_CHECKING:
    from ..store.store import Store

logger = logging.getLogger("tollmeter.notifications")

DEFAULT_TENANT_LIMITS = "*"


@dataclass
class Hit:
    """A rule that holds now."""

    rule: str
    tenant_id: str
    subject: str
    period: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.rule, self.tenant_id, self.subject, self.period)


def evaluate(store: Store, now: datetime | None = None, *, leaks: bool = True) -> int:
    """Evaluate the project's rules for its enabled endpoints; returns the messages queued.
    `leaks=False` leaves the leak rules (the costly ones: they read the month's margin) out."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    with store.transaction() as conn:
        endpoints = list(ep.enabled_rows(conn, store.project))
    if not endpoints:
        return 0
    wanted = _wanted(endpoints)
    # What fired before the rules are read: only these may be resolved by this evaluation (a row
    # another replica fires meanwhile, from data newer than ours, is not ours to judge).
    t = schema.notifications
    with store.transaction() as conn:
        firing = conn.execute(select(t).where(t.c.project_id == store.project, t.c.state == "firing")).mappings().all()
    hits: list[Hit] = []
    evaluated: set[str] = set()
    if wanted["limit"]:
        hits += _limit_hits(store, sorted(wanted["limit"]), now)
        evaluated.add("limit")
    if wanted["refusals"]:
        hits += _refusal_hits(store, wanted["refusals"], now)
        evaluated.add("refusals")
    if wanted["leak"] and leaks:
        try:
            hits += _leak_hits(store, now)
            evaluated.add("leak")
        except Exception:  # a plan the leak rules cannot read: the other rules still run
            logger.exception("leak rules failed for project %s", store.project)
    queued = 0
    ongoing = {(r["rule"], r["tenant_id"], r["subject"]): r["period"] for r in firing if r["rule"] == "refusals"}
    for hit in hits:
        if hit.rule == "refusals" and (hit.rule, hit.tenant_id, hit.subject) in ongoing:
            hit.period = ongoing[(hit.rule, hit.tenant_id, hit.subject)]  # the burst goes on
    active = {hit.key for hit in hits}
    for hit in hits:
        queued += _fire(store, hit, endpoints, now)
    for row in firing:
        key = (row["rule"], row["tenant_id"], row["subject"], row["period"])
        if row["rule"] in evaluated and key not in active and _produced(row, wanted):
            queued += _resolve(store, row, endpoints, now, hits)
    return queued


def _wanted(endpoints: list[Any]) -> dict[str, set[Any]]:
    """What the endpoints ask for: thresholds, refusal (count, window) pairs, leaks."""
    wanted: dict[str, set[Any]] = {"limit": set(), "refusals": set(), "leak": set()}
    for row in endpoints:
        opts = ep.options(row)
        if "limit" in opts["rules"]:
            wanted["limit"].update(opts["thresholds"])
        if "refusals" in opts["rules"]:
            wanted["refusals"].add((opts["refusal_count"], opts["refusal_window_minutes"]))
        if "leak" in opts["rules"]:
            wanted["leak"].add(True)
    return wanted


def _produced(row: Any, wanted: dict[str, set[Any]]) -> bool:
    """Whether the configuration still asks for this row's subject (else it is left alone)."""
    if row["rule"] == "limit":
        return _threshold_of(row["subject"]) in {str(p) for p in wanted["limit"]}
    if row["rule"] == "refusals":
        return row["subject"] in {_refusal_subject(c, w) for c, w in wanted["refusals"]}
    return bool(wanted["leak"])


def _targets(endpoints: list[Any], rule: str, subject: str) -> list[Any]:
    out = []
    for row in endpoints:
        opts = ep.options(row)
        if rule not in opts["rules"]:
            continue
        if rule == "limit" and _threshold_of(subject) not in {str(p) for p in opts["thresholds"]}:
            continue
        if rule == "refusals" and subject != _refusal_subject(opts["refusal_count"], opts["refusal_window_minutes"]):
            continue
        out.append(row)
    return out


def _fire(store: Store, hit: Hit, endpoints: list[Any], now: datetime) -> int:
    t = schema.notifications
    with store.transaction() as conn:
        claimed = conn.execute(_insert(conn, t).values(
            project_id=store.project, rule=hit.rule, tenant_id=hit.tenant_id, subject=hit.subject, period=hit.period,
            state="firing", fired_at=now, detail=hit.data,
        ).on_conflict_do_nothing(index_elements=["project_id", "rule", "tenant_id", "subject", "period"])
            .returning(t.c.state)).first()
        if claimed is None:  # another replica's, or sent before in this period
            return 0
        message = payload(project=store.project, rule=hit.rule, tenant_id=hit.tenant_id, subject=hit.subject,
                          period=hit.period, status="firing", text=hit.text, data=hit.data, at=now)
        return enqueue(conn, store.project, _targets(endpoints, hit.rule, hit.subject), message, now)


def _resolve(store: Store, row: Any, endpoints: list[Any], now: datetime, hits: list[Hit]) -> int:
    t = schema.notifications
    text, data = _resolution(store, row, now, hits)
    with store.transaction() as conn:
        done = conn.execute(update(t).where(
            t.c.project_id == store.project, t.c.rule == row["rule"], t.c.tenant_id == row["tenant_id"],
            t.c.subject == row["subject"], t.c.period == row["period"], t.c.state == "firing",
        ).values(state="resolved", resolved_at=now))
        if done.rowcount != 1:
            return 0
        message = payload(project=store.project, rule=row["rule"], tenant_id=row["tenant_id"], subject=row["subject"],
                          period=row["period"], status="resolved", text=text, data=data, at=now)
        return enqueue(conn, store.project, _targets(endpoints, row["rule"], row["subject"]), message, now)


# -- limit thresholds -------------------------------------------------------------------------------


def _limit_hits(store: Store, thresholds: list[Any], now: datetime) -> list[Hit]:
    hits = []
    for tenant in _limited_tenants(store, now):
        for state in store.limit_states(tenant, at=now):
            limit, spent = state.limit.limit_usd, state.spent_usd
            if spent <= 0:
                continue
            share = (spent / limit * 100) if limit > 0 else None
            for pct in thresholds:
                if limit > 0 and spent < limit * Decimal(str(pct)) / 100:
                    continue
                freq = state.limit.frequency
                data = {"frequency": freq, "threshold_pct": pct, "limit_usd": decimal_text(limit),
                        "spent_usd": decimal_text(spent), "spent_pct": None if share is None else round(float(share), 1),
                        "default_limit": state.limit.default,
                        "resets_at": state.resets_at.isoformat() if state.resets_at else None}
                text = (f"{tenant} spent {usd_text(spent)} of its {usd_text(limit)} {_per(freq)} limit"
                        + (f" ({data['spent_pct']}%)" if share is not None else "")
                        + f": past {pct}%" + (f", resets {data['resets_at']}" if data["resets_at"] else ""))
                hits.append(Hit("limit", tenant, f"{freq}:{pct}", period_key(freq, now), text, data))
    return hits


def _limited_tenants(store: Store, now: datetime) -> list[str]:
    limits = store.all_limits()
    tenants = {lim.tenant_id for lim in limits if lim.tenant_id != DEFAULT_TENANT_LIMITS}
    if any(lim.tenant_id == DEFAULT_TENANT_LIMITS for lim in limits):
        s = schema.spend
        with store.transaction() as conn:
            tenants.update(conn.execute(select(s.c.tenant_id).distinct().where(
                s.c.project_id == store.project, s.c.period.in_(period_keys(now)), s.c.spent_usd > 0)).scalars())
    return sorted(tenants)


def _threshold_of(subject: str) -> str:
    return subject.partition(":")[2]


def _per(freq: str) -> str:
    return {"per_hour": "hourly", "per_day": "daily", "per_month": "monthly"}.get(freq, freq)


# -- refusal bursts -------------------------------------------------------------------------------


def _refusal_subject(count: int, window: int) -> str:
    return f"{count}/{window}m"


def _refusal_hits(store: Store, wanted: set[tuple[int, int]], now: datetime) -> list[Hit]:
    hits = []
    hour = f"{now:%Y-%m-%dT%H}"
    for count, window in sorted(wanted):
        with store.transaction() as conn:
            seen = refusals_since(conn, store.project, now - timedelta(minutes=window - 1))
        for tenant, refused in sorted(seen.items()):
            if refused >= count:
                text = (f"{tenant}: {refused} budget leases refused in the last {window} minute"
                        f"{'s' if window != 1 else ''} (burst: {count} or more); its calls are being refused")
                data = {"refusals": refused, "count": count, "window_minutes": window}
                hits.append(Hit("refusals", tenant, _refusal_subject(count, window), hour, text, data))
    return hits


# -- leaks ----------------------------------------------------------------------------------------


#: Run ids a grouped runs notification names at most (the costliest first).
RUNS_NAMED = 20


def _leak_hits(store: Store, now: datetime) -> list[Hit]:
    """A customer's or an agent's flag is one notification; a customer's flagged runs are one
    together per leak rule (subject "<rule>:runs"): a per-resolution plan's failed runs are all
    flagged, and one webhook per run would bury the rest."""
    from ..store.ledger import Ledger

    month = f"{now:%Y-%m}"
    hits = []
    runs: dict[tuple[str, str], list[Any]] = {}
    for leak in Ledger(store).leaks(today=now.date()):
        if leak.subject == "run":
            runs.setdefault((leak.tenant_id or "", leak.rule), []).append(leak)
            continue
        digest = hashlib.sha256(f"{leak.subject}\x1f{leak.subject_id or ''}".encode()).hexdigest()[:16]
        hits.append(Hit("leak", leak.tenant_id or "", f"{leak.rule}:{digest}", month,
                        f"Leak ({leak.rule}): {leak.message}", leak.to_dict()))
    for (tenant, rule), flagged in sorted(runs.items()):
        hits.append(_runs_hit(tenant, rule, flagged, month))
    return hits


def _runs_hit(tenant: str, rule: str, flagged: list[Any], month: str) -> Hit:
    def over(leak: Any) -> Decimal:
        return leak.numbers["cost_usd"] - leak.numbers["revenue_usd"]

    flagged = sorted(flagged, key=lambda leak: (-over(leak), leak.subject_id or ""))
    cost = sum((leak.numbers["cost_usd"] for leak in flagged), Decimal(0))
    revenue = sum((leak.numbers["revenue_usd"] for leak in flagged), Decimal(0))
    sinces = [leak.since for leak in flagged if leak.since is not None]
    count = len(flagged)
    text = (f"Leak ({rule}): {count} run{'s' if count != 1 else ''} of {tenant} this month cost more than "
            f"{'they earn' if count != 1 else 'it earns'}: {usd_text(cost)} against {usd_text(revenue)}; "
            f"the costliest: {flagged[0].message}")
    data = {"rule": rule, "subject": "runs", "subject_id": None, "tenant_id": tenant or None,
            "since": min(sinces).isoformat() if sinces else None, "message": text,
            "numbers": {"runs": count, "cost_usd": decimal_text(cost), "revenue_usd": decimal_text(revenue)},
            "run_ids": [leak.subject_id for leak in flagged[:RUNS_NAMED]]}
    return Hit("leak", tenant, f"{rule}:runs", month, text, data)


# -- resolutions ----------------------------------------------------------------------------------


def _resolution(store: Store, row: Any, now: datetime, hits: list[Hit]) -> tuple[str, dict[str, Any]]:
    """The resolved message's text and data (the firing detail, with why it cleared)."""
    data = dict(row["detail"] or {})
    tenant, rule = row["tenant_id"], row["rule"]
    if rule == "limit":
        freq, pct = row["subject"].partition(":")[::2]
        if row["period"] != period_key(freq, now):
            data["reason"] = "period_ended"
            return f"Resolved: {tenant}'s {_per(freq)} period {row['period'].partition(':')[2]} ended", data
        state = next((s for s in store.limit_states(tenant, at=now) if s.limit.frequency == freq), None)
        if state is None:
            data["reason"] = "limit_removed"
            return f"Resolved: {tenant} has no {_per(freq)} limit any more", data
        data.update(reason="below_threshold", limit_usd=decimal_text(state.limit.limit_usd),
                    spent_usd=decimal_text(state.spent_usd))
        return (f"Resolved: {tenant} is below {pct}% of its {_per(freq)} limit again "
                f"({usd_text(state.spent_usd)} of {usd_text(state.limit.limit_usd)})"), data
    if rule == "refusals":
        data["reason"] = "burst_over"
        return (f"Resolved: {tenant}'s refused leases are below {data.get('count')} in "
                f"{data.get('window_minutes')} minutes"), data
    if row["period"] != f"{now:%Y-%m}":
        data["reason"] = "month_ended"
        return f"Resolved: the month {row['period']} ended (leak {row['subject'].partition(':')[0]})", data
    data["reason"] = "no_longer_flagged"
    if data.get("subject") == "runs":
        return f"Resolved: no run of {tenant} is flagged {data.get('rule')} any more", data
    what = data.get("subject_id") or data.get("tenant_id") or tenant
    return f"Resolved: {data.get('subject', 'subject')} {what} is no longer flagged ({data.get('rule')})", data
