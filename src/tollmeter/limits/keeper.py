"""LimitKeeper: a Meter's limits, from `set_limit` to the guard, settlement and alerts.

It opens the store (SQLite; SQLAlchemy is imported then, in the background at start-up) and
owns the guard. The caller's thread meets `admit_plain`, `admit` and `finished`, and never waits
on the store or the server longer than `MeterConfig.limits_wait` (plus, for a process's first
calls, the imports of its start-up); settlement of
real costs (`settle`), the events written to the embedded store and threshold alerts run on
the background worker, except that a tenant short of budget settles its own finished calls
before being refused (see guard.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..faults import RejectedEvent
from ..pacing import give_way
from ..rules import MAX_COUNT, MAX_TOKENS, check_count, check_id, check_money
from ..store.rows import event_row_of
from .exceptions import LimitExceededException
from .guard import NEEDS_CHECK, NEEDS_LEASE, WaitNote
from .remote import BudgetsUnavailable
from .periods import frequency as check_frequency
from .periods import period_key

if TYPE_CHECKING:
    from ..config import MeterConfig
    from ..events import LLMEvent
    from ..pricing.pricer import Pricer
    from ..store.store import Limit, Store
    from .estimate import RequestFormat
    from .guard import Guard, Reservation, UsedTokens
    from .request import CallRequest

logger = logging.getLogger("tollmeter")

_ZERO = Decimal(0)

#: Seconds a first call waits at most for the store to open: its code to load and its schema
#: to be made (CPU work); a wait for a locked database in it is bounded by `limits_wait`.
_OPEN_WAIT = 10.0
#: Seconds between two background attempts to open a store that could not be opened.
_REOPEN_AFTER = 5.0
#: Seconds after a failed write before the upkeep writes what is kept again.
_RETRY_AFTER = 5.0
#: An async caller's refill runs on the loop's executor: this much on top of `limits_wait` for
#: the executor to start it.
_ASYNC_START = 0.02


@dataclass(slots=True)
class Settled:
    """A call whose reservation was replaced by its real cost, on its way to the store. (Not
    frozen, as `_Part`: one is made for every event.)"""

    event: LLMEvent
    reservation: Any
    #: What it counts against limits (its price, or by the unpriced policy); None: unknown,
    #: and the reservation stands as spent.
    cost_usd: Decimal | None


@dataclass(slots=True)
class _Part:
    """One event as `record` writes it. Not frozen: a frozen dataclass's `__init__` sets each
    field through `object.__setattr__`, 1.4 µs of the worker's for every event (0.25 this way)."""

    event: LLMEvent
    row: dict[str, Any] | None
    #: (lease id, cost): what the event takes off the lease it was reserved against.
    settle: tuple[str, Decimal] | None
    #: (tenant, time, cost): spend its row does not add itself.
    spend: tuple[str, datetime, Decimal] | None
    cost: Decimal | None = None


def _spend(event: LLMEvent, cost: Decimal | None) -> tuple[str, datetime, Decimal] | None:
    return (event.tenant_id, event.timestamp, cost) if cost and event.tenant_id is not None else None


def _store_unusable(fault: BaseException) -> bool:
    """A fault of the store itself (locked, gone, unreachable), not of a value written to it."""
    try:
        from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
        from sqlalchemy.exc import TimeoutError as PoolTimeout
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    import sqlite3

    return isinstance(fault, (OperationalError, InterfaceError, DisconnectionError, PoolTimeout,
                              sqlite3.OperationalError, OSError))


@dataclass(frozen=True)
class SpendStatus:
    """Where a tenant stands against one of its limits."""

    tenant_id: str
    frequency: str
    limit_usd: Decimal
    spent_usd: Decimal
    #: Open reservations of this process (calls under way).
    reserved_usd: Decimal
    #: Budget leased to agent processes and not yet spent (all processes, reservations included).
    leased_usd: Decimal
    resets_at: datetime | None
    #: True when the tenant has no limit of its own and this is the default limit.
    default: bool = False

    @property
    def remaining_usd(self) -> Decimal:
        return max(_ZERO, self.limit_usd - self.spent_usd - self.reserved_usd)

    @property
    def used_fraction(self) -> float:
        return float(self.spent_usd / self.limit_usd) if self.limit_usd else 1.0


class LimitKeeper:
    def __init__(self, config: MeterConfig, pricer: Callable[[], Pricer], fault: Callable[[BaseException, str], None]) -> None:
        self.config = config
        self._pricer = pricer
        self._fault = fault
        self.admit_plain = self._admit_plain_unopened  # the guard's own once it opens (`guard`)
        self._open_lock = threading.Lock()
        self._store: Store | None = None
        self._guard: Guard | None = None
        #: Events go to the store (the embedded default) unless they are shipped to a server.
        self.keeps_events = config.url is None and config.store is not False
        self._warming: threading.Thread | None = None
        #: Monotonic time the warm-up started (0: not yet).
        self._warm_started = 0.0
        self._warm_lock = threading.Lock()
        self._unopened_reported = False
        #: Calls decided by `limits_unreachable` because the store was not open in time.
        self.unopened_calls = 0
        #: Events the embedded store refused and `record` set aside (see `set_aside`).
        self.rejected = 0
        #: What `record` could not write because the store could not be written at all (locked
        #: past its busy timeout, unreachable): written first on the next `record`, or by the
        #: upkeep after `_RETRY_AFTER` seconds. At most `max_queue_size` events; past that the
        #: oldest are dropped, counted in `store_dropped` and reported.
        self._unwritten: list[_Part] = []
        self._retry_at = 0.0
        self.store_dropped = 0
        #: Settles a finished call's record (the pipeline's); see `finished`.
        self.settle_record: Callable[[Any], None] | None = None
        _keepers.add(self)

    # -- opening --------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Open the store and load prices in the background, so that the first call does not."""
        def run() -> None:
            try:
                self.guard
                self._pricer()
            except Exception as fault:
                self._fault(fault, "opening the store")

        self._warm_started = time.monotonic()
        self._warming = threading.Thread(target=run, name="tollmeter-warm-up", daemon=True)
        self._warming.start()

    def _opened_guard(self) -> Guard | None:
        """The guard for a caller: waits for the warm-up while it loads code, then at most
        `limits_wait` for the database (a locked SQLite file keeps it waiting); None if the
        store is not open by then. The caller's thread never opens the store itself."""
        with self._warm_lock:  # not _open_lock: the warm-up holds that while it opens the store
            guard = self._guard
            if guard is not None:
                return guard
            warming = self._warming
            if warming is None or not warming.is_alive():
                if time.monotonic() - self._warm_started < _REOPEN_AFTER and warming is not None:
                    return None  # the last attempt failed a moment ago
                self.warm_up()
                warming = self._warming
        assert warming is not None
        # Imports and creating the schema are work, waited for; the warm-up's waits for the
        # database's lock are bounded by `limits_wait` inside it (`store`), and it ends then.
        warming.join(_OPEN_WAIT)
        return self._guard

    def _unopened(self) -> None:
        """A call while the store is not open (locked, say): decided by `limits_unreachable`."""
        self.unopened_calls += 1
        if not self._unopened_reported:
            self._unopened_reported = True
            self._fault(BudgetsUnavailable(
                f"the store is not open yet (waited {self.config.limits_wait:g}s); calls decide by "
                f"limits_unreachable={self.config.limits_unreachable!r} until it is"), "opening the store")
        if self.config.limits_unreachable == "closed":
            raise LimitExceededException(None, limit="store unreachable", message=(
                "the store cannot be opened to check limits, and limits are set to fail closed"))

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._open_lock:
                if self._store is None:
                    from ..store.store import Store

                    if self.config.url is not None:
                        # Limits shared by every instance of the app live on the server.
                        from .remote import RemoteBudgets

                        self._store = RemoteBudgets(self.config.url, self.config.api_key or "",
                                                    timeout=self._background_wait())
                    else:
                        target = ":memory:" if self.config.store is False else self.config.store
                        from ..store.store import lock_wait

                        # Opened by the warm-up for a caller that waits: a locked file makes
                        # it fail after `limits_wait` (and try again later), not wait 30 s.
                        bounded = threading.current_thread() is self._warming
                        with lock_wait(self.config.limits_wait if bounded else None):
                            self._store = Store(target)
        return self._store

    @property
    def guard(self) -> Guard:
        if self._guard is None:
            store = self.store
            with self._open_lock:
                if self._guard is None:
                    from .guard import Guard, GuardSettings

                    self._guard = Guard(store, self._pricer, GuardSettings(
                        lease_ttl=self.config.lease_ttl, unpriced_calls=self.config.unpriced_calls,
                        fallback_prices=self.config.fallback_prices,
                        unreachable=self.config.limits_unreachable, reservation=self.config.reservation,
                        wait=self.config.limits_wait, background_wait=self._background_wait()),
                        settle=self._settle_record, fault=self._fault)
                    self.admit_plain = self._guard.admit_plain
                    self._unopened_reported = False
        return self._guard

    def _background_wait(self) -> float:
        """Seconds a lease request may take off the caller's thread (HTTP timeout, lock wait)."""
        return min(self.config.timeout, 5.0)

    # -- the API --------------------------------------------------------------------------------

    def set_limit(self, tenant_id: str, limit_usd: Any, frequency: str) -> None:
        tenant_id = _tenant(tenant_id)
        amount = usd_amount(limit_usd)
        freq = check_frequency(frequency)
        self.store.set_limit(tenant_id, freq, amount)
        self.guard.forget(None if tenant_id == "*" else tenant_id)

    def remove_limit(self, tenant_id: str, frequency: str | None = None) -> int:
        tenant_id = _tenant(tenant_id)
        removed = self.store.remove_limit(tenant_id, check_frequency(frequency) if frequency else None)
        self.guard.forget(None if tenant_id == "*" else tenant_id)
        return removed

    def get_limits(self, tenant_id: str) -> list[Limit]:
        return self.store.limits_for(_tenant(tenant_id))

    def set_rate_limit(self, tenant_id: str, requests_per_minute: int | None, tokens_per_minute: int | None) -> None:
        tenant_id = _tenant(tenant_id)
        for name, value, most in (("requests_per_minute", requests_per_minute, MAX_COUNT),
                                  ("tokens_per_minute", tokens_per_minute, MAX_TOKENS)):
            if value is not None:
                check_count(value, name, least=1, most=most)
        self.store.set_rate_limit(tenant_id, requests_per_minute, tokens_per_minute)
        self.guard.forget(tenant_id)

    def spend(self, tenant_id: str) -> list[SpendStatus]:
        tenant_id = _tenant(tenant_id)
        reserved = self.guard.reserved(tenant_id)
        return [
            SpendStatus(tenant_id, s.limit.frequency, s.limit.limit_usd, s.spent_usd, reserved, s.leased_usd,
                        s.resets_at, s.limit.default)
            for s in self.store.limit_states(tenant_id)
        ]

    # -- the caller's thread --------------------------------------------------------------------

    def _admit_plain_unopened(self, tenant_id: str, provider: str | None, model: str | None, kwargs: Any,
                              request_format: RequestFormat | None) -> Reservation | None | object:
        """`admit_plain` before the guard is open: NEEDS_CHECK (then `admit`).

        `admit_plain` itself, a call's first look-up (`Guard.admit_plain`: None when its tenant
        is known to have no limit, a Reservation of a plain request's table bound, or
        NEEDS_CHECK), is an attribute of the instance only: this method until the guard opens,
        then the guard's own (`guard`). It runs before every call, so a call less counts, and
        so does its read: an instance attribute shadowing a method of the class is a read
        Python 3.11 does not specialise."""
        return NEEDS_CHECK

    def admit(self, request: CallRequest) -> Reservation | None:
        """Reserve the call's worst case, or raise LimitExceededException. Waits only when the
        lease must be refilled, `limits_wait` at most (then `limits_unreachable` decides)."""
        try:
            guard = self._guard or self._opened_guard()
            if guard is None:
                self._unopened()
                return None
            reservation = guard.check(request)
            if reservation is NEEDS_LEASE:
                reservation = guard.refill(request)
        except LimitExceededException:
            raise
        except Exception as fault:  # the store is broken: let the call through, say so
            self._fault(fault, "checking limits")
            return None
        return reservation  # type: ignore[return-value]

    async def admit_async(self, request: CallRequest) -> Reservation | None:
        """The same for async callers: a refill runs in a worker thread, off the event loop,
        and the task waits for it no longer than a sync caller would."""
        try:
            guard = self._guard or await asyncio.to_thread(self._opened_guard)
            if guard is None:
                self._unopened()
                return None
            reservation = guard.check(request)
            if reservation is NEEDS_LEASE:
                reservation = await _refill_async(guard, request, self.config.limits_wait)
        except LimitExceededException:
            raise
        except Exception as fault:
            self._fault(fault, "checking limits")
            return None
        return reservation  # type: ignore[return-value]

    def finished(self, reservation: Reservation, record: Any) -> None:
        """The call ended: its reservation waits for `settle` (worker) or for its tenant's next
        call short of budget, which settles `record` through `settle_record` first."""
        reservation.record = record  # Guard.finished, without the call: this runs for every call

    def settle_soon(self, reservation: Reservation, used: Callable[[Any], UsedTokens | None]) -> bool:
        """The call of `reservation` ended, leaving its lease short (`Reservation.urgent`): its
        tenant's finished calls are cut to what they used (`Guard.trim_finished`, read by
        `used`) and settled on the guard's settling thread (`Guard.settle_soon`). False when
        they cannot be settled there (then the caller wakes the worker)."""
        guard = self._guard
        if guard is None:
            return False
        guard.trim_finished(reservation.budget, used)
        return guard.settle_soon(reservation.budget)

    def release(self, reservation: Reservation) -> None:
        """A call that was never sent gives its reservation back."""
        if self._guard is not None:
            self._guard.release(reservation)

    # -- the background worker ------------------------------------------------------------------

    def _settle_record(self, record: Any) -> None:
        if self.settle_record is None:
            raise RuntimeError("no settle_record: the meter did not wire its pipeline")
        self.settle_record(record)

    def settle_one(self, reservation: Reservation) -> None:
        """Settle a finished call unless a caller short of budget already has."""
        if self._guard is not None:
            self._guard.settle_one(reservation)

    def settle(self, reservation: Reservation, event: LLMEvent | None) -> Settled | None:
        """Replace the reservation by the call's real cost (its priced event; None when the
        event could not be built: the reservation then stands as spent)."""
        cost = self._limit_cost(event, reservation) if event is not None else None
        if self._guard is not None:
            usage = event.usage if event is not None else None
            self._guard.settle(reservation, cost, usage.total_tokens if usage else None,
                               usage.output_tokens if usage and not event.partial and not event.error else None)
        if event is None:
            return None
        event.lease_id = reservation.lease_id
        return Settled(event, reservation, cost)

    def record(self, events: Sequence[LLMEvent], settled: Sequence[Settled | None]) -> None:
        """Write the events (embedded store) and their spend with the lease settlements in one
        transaction, then send threshold alerts. On the background worker. With a server, the
        server does all this as the events arrive (each names its lease).

        One bad value never costs the batch: a batch the store refuses for its data is written
        again event by event, and an event it still refuses is set aside (`set_aside`): counted
        in `rejected`, reported to `on_error` as a `RejectedEvent` carrying the event and the
        reason, its spend still counted when the store takes that. A store that cannot be
        written at all (locked past its busy timeout, gone) raises, and what was not written is
        kept and written with the next batch (or by the upkeep): that is no single event's fault,
        and nothing is lost once the store can be written again."""
        if getattr(self._store, "remote", False) or (self._store is None and self.config.url is not None):
            return
        parts = []
        for event, done in zip(events, settled):
            give_way()
            parts.append(self._part(event, done))
        self._write_parts([*self._take_unwritten(), *parts])
        if self.config.alert_thresholds and self.config.on_threshold is not None:
            self._alerts({e.tenant_id for e in events if e.tenant_id is not None})

    def _write_parts(self, parts: list[_Part]) -> None:
        if not parts:
            return
        try:
            self._write(parts)
        except Exception as fault:
            if _store_unusable(fault):
                self._keep_unwritten(parts)
                raise
            for i, part in enumerate(parts):  # the batch again, one event at a time
                try:
                    self._write([part])
                except Exception as refused:
                    if _store_unusable(refused):
                        self._keep_unwritten(parts[i:])
                        raise
                    self.set_aside(part, refused)

    def _take_unwritten(self) -> list[_Part]:
        kept, self._unwritten = self._unwritten, []
        return kept

    def _keep_unwritten(self, parts: list[_Part]) -> None:
        """The store cannot be written now: keep `parts` (bounded) for the next attempt."""
        self._retry_at = time.monotonic() + _RETRY_AFTER
        kept = [*self._unwritten, *parts]
        over = len(kept) - self.config.max_queue_size
        if over > 0:
            self.store_dropped += over
            self._fault(RuntimeError(f"the embedded store could not be written for a while: {over} events "
                                     f"dropped (at most {self.config.max_queue_size} are kept)"), "storing events")
            kept = kept[over:]
        self._unwritten = kept

    def write_unwritten(self) -> None:
        """The upkeep: write what a locked or unreachable store could not take, when due."""
        if not self._unwritten or time.monotonic() < self._retry_at:
            return
        try:
            self._write_parts(self._take_unwritten())
        except Exception as fault:
            self._fault(fault, "recording spend")

    def _part(self, event: LLMEvent, done: Settled | None) -> _Part:
        """What recording one event writes: its row, its lease settlement, spend not in its row."""
        cost = done.cost_usd if done is not None else (event.cost_usd if event.priced else None)
        lease_id = done.reservation.lease_id if done is not None else None
        settle = (lease_id, cost) if lease_id is not None and cost is not None else None
        row = None
        if self.keeps_events:
            try:
                row = event_row_of(event)
            except Exception as refused:
                part = _Part(event, None, settle, _spend(event, cost))
                self.set_aside(part, refused, write_spend=False)
                return part
        # A stored priced event adds its cost to the spend itself (once, however often it is
        # stored); anything else that counts against limits is added here.
        counted_by_row = row is not None and event.priced
        return _Part(event, row, settle, None if counted_by_row else _spend(event, cost), cost)

    def _write(self, parts: Sequence[_Part]) -> None:
        rows = [p.row for p in parts if p.row is not None]
        settlements: dict[str, Decimal] = {}
        for p in parts:
            if p.settle is not None:
                settlements[p.settle[0]] = settlements.get(p.settle[0], _ZERO) + p.settle[1]
        extra_spend = [p.spend for p in parts if p.spend is not None]
        if rows or settlements or extra_spend:
            self.store.add_events(rows, settlements, extra_spend=extra_spend)

    def set_aside(self, part: _Part, reason: BaseException, write_spend: bool = True) -> None:
        """An event the store will not take: counted, reported with its reason; what it cost
        still counts against its tenant's limits if the store takes that alone."""
        self.rejected += 1
        event = part.event
        try:
            wire = event.to_dict()
        except Exception:
            wire = {"event_id": getattr(event, "event_id", None)}
        self._fault(RejectedEvent(f"the embedded store refused event {wire.get('event_id')} ({reason!r}); "
                                  "set aside, the rest of its batch stored", event=wire, reason=repr(reason)),
                    "storing an event")
        if write_spend and part.row is not None:
            alone = _Part(event, None, part.settle, part.spend if part.spend is not None else _spend(event, part.cost))
            try:
                self._write([alone])
            except Exception:  # the spend too carries the bad value (a tenant id): reported above
                pass

    def _limit_cost(self, event: LLMEvent, ticket: Any) -> Decimal | None:
        """What the call counts against limits: its cost, or by the policy when unpriced."""
        if event.priced:
            return event.cost_usd
        if ticket is None or self._guard is None:
            return None
        from ..pricing.rates import usage_counts

        if event.usage.is_empty():
            return None  # unknown: the reservation stands as spent
        return self._guard.unpriced_cost(usage_counts(event.usage))

    def _alerts(self, tenants: set[str]) -> None:
        guard = self._guard
        now = datetime.now(timezone.utc)
        for tenant in tenants:
            if guard is None or not guard.has_limits(tenant):
                continue
            for state in self.store.limit_states(tenant, now):
                fraction = state.spent_usd / state.limit.limit_usd if state.limit.limit_usd else Decimal(1)
                for threshold in self.config.alert_thresholds:
                    if fraction < Decimal(str(threshold)):
                        break
                    period = period_key(state.limit.frequency, now)
                    if self.store.claim_alert(tenant, period, f"{threshold:g}"):
                        try:
                            self.config.on_threshold(tenant, state.limit, threshold)  # type: ignore[misc]
                        except Exception as fault:
                            self._fault(fault, "in on_threshold")

    def maintain(self) -> None:
        if self._guard is not None:
            self._guard.maintain()
        self.write_unwritten()

    def stats(self) -> dict[str, int]:
        """Waits for a lease that ran out (`lease_waits_exceeded`), calls decided by
        `limits_unreachable` (`limits_unreachable_calls`), circuit openings and whether it is
        open now (`limits_circuit_open`: 0 or 1)."""
        guard = self._guard
        if guard is None:
            return {"lease_waits_exceeded": 0, "limits_unreachable_calls": self.unopened_calls,
                    "limits_circuit_opened": 0, "limits_circuit_open": 0}
        return {"lease_waits_exceeded": guard.waits_exceeded,
                "limits_unreachable_calls": guard.decided_unreachable + self.unopened_calls,
                "limits_circuit_opened": guard.circuit.opened, "limits_circuit_open": int(guard.circuit.is_open)}

    def close(self) -> None:
        if self._unwritten:  # a last attempt (the store's busy timeout at most)
            self._retry_at = 0.0
            self.write_unwritten()
        if self._guard is not None:
            self._guard.close()
        if self._store is not None:
            self._store.close()

    def _after_fork_in_child(self) -> None:
        """The parent's database connections and leases are the parent's: start afresh."""
        self._open_lock = threading.Lock()
        self._warm_lock = threading.Lock()
        self.rejected = 0
        self.unopened_calls = 0
        self._unwritten, self.store_dropped = [], 0  # the parent's to write
        store: Any = self._store
        if getattr(store, "remote", False):
            store.after_fork()
        elif store is not None:
            store.after_fork()
        self._guard = None
        self.admit_plain = self._admit_plain_unopened  # not the parent's guard's


async def _refill_async(guard: Guard, request: CallRequest, wait: float) -> Reservation | None:
    """`guard.refill` on the loop's executor, awaited `wait` (+ the executor's start) at most;
    past it the call is decided at once, and a reservation the refill makes later is given back."""
    loop = asyncio.get_running_loop()
    # Pricing the call may wait for the prices to load at start-up (CPU work, not a wait on the
    # store): off the loop, before the bound starts.
    await loop.run_in_executor(None, guard.estimate, request)
    deadline = time.monotonic() + wait
    note = WaitNote()  # what the refill met: counted only if its answer is the call's
    future = loop.run_in_executor(None, guard.refill, request, deadline, note)
    try:
        reservation = await asyncio.wait_for(asyncio.shield(future), wait + _ASYNC_START)
    except (asyncio.TimeoutError, asyncio.CancelledError) as stopped:
        future.add_done_callback(lambda done: _give_back(guard, done))
        if isinstance(stopped, asyncio.CancelledError):
            raise
        return guard.decide_now(request)
    except BaseException:
        guard.count(note)
        raise
    guard.count(note)
    return reservation


def _give_back(guard: Guard, done: asyncio.Future) -> None:
    """A refill finished after its caller stopped waiting: its reservation is nobody's."""
    if done.cancelled() or done.exception() is not None:
        return
    reservation = done.result()
    if reservation is not None:
        guard.release(reservation)


_keepers: "weakref.WeakSet[LimitKeeper]" = weakref.WeakSet()


def _before_fork() -> None:
    # A child forked while the warm-up thread imports would inherit a held import lock and
    # hang on its first import: let the warm-up finish first (it takes well under a second).
    for keeper in list(_keepers):
        warming = keeper._warming
        if warming is not None and warming.is_alive() and warming is not threading.current_thread():
            warming.join(10)


def _reset_in_child() -> None:
    for keeper in list(_keepers):
        keeper._warming = None
        keeper._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_reset_in_child)


def usd_amount(value: Any) -> Decimal:
    """A limit's amount: USD from 0 to below 10^15 (rules.check_money); ValueError otherwise."""
    try:
        return check_money(value, "limit_usd")
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _tenant(tenant_id: Any) -> str:
    """A tenant id as limits take it (rules.check_id; "*" is the default limits' own)."""
    return check_id(tenant_id, "tenant_id")
