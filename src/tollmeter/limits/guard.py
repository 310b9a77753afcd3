"""The guard: a tenant over its allowance is stopped before the request leaves the process.

Before a call, the guard reserves the call's worst-case cost (`estimate.py`: the request's
input, its output cap at the output rate, times `n`). The check is in memory: each process
holds a *lease*, a slice of the tenant's remaining budget granted atomically by the store, and
reserves against it. When a lease runs short the guard asks the store for more (one short
transaction, not one per call); when the store has none left, the call is refused with
`LimitExceededException` and nothing is sent. After the call the reservation is replaced by
the real cost on the background worker, which writes the spend and takes it off the lease in
the same transaction. Until then the finished call's reservation still counts; a tenant whose
next call does not fit settles its finished calls first, on its own thread (`settle_finished`),
so that a reservation already replaced in fact never refuses a call.

Because every reservation fits inside a lease and the leases of all processes together never
exceed what the limits leave (settled spend + leases <= limit, kept by the store), settled
spend exceeds a limit only by what calls cost beyond their reservation. See docs/limits.md.

What a call reserves is the `reservation` policy's: "worst_case" always reserves the worst
case (a call whose worst case exceeds what its tenant has left is refused, even when the limit
is smaller than any one call's worst case). "adaptive" (the default) reserves the worst case
whenever the budget can cover it; when it cannot, it reserves what recent calls of the same
model actually produced (`Observed`: the 95th percentile of their output tokens, at least the
request's estimated input), capped at the worst case, and admits the call if that fits. Such a
call can overshoot by at most its worst case minus what it reserved.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from .exceptions import LimitExceededException, RateLimitExceededException
from .remote import BudgetsUnavailable

if TYPE_CHECKING:
    from ..pricing.pricer import PriceMatch, Pricer
    from ..pricing.rates import RateSheet
    from ..store.store import Store
    from .request import CallRequest

logger = logging.getLogger("tollmeter")

_ZERO = Decimal(0)

#: Seconds past its recheck after which a "no limit" answer is asked again on the caller's
#: thread (normally the background worker asks well before).
_STALE_UNLIMITED = 60.0

#: Returned by `Guard.check` when the local lease cannot cover the call: `refill`.
NEEDS_LEASE = object()

UNPRICED_POLICIES = ("estimate", "block", "allow")


@dataclass
class GuardSettings:
    #: Seconds a lease lives unless renewed; leases with open reservations are renewed.
    lease_ttl: float = 30.0
    #: A lease asks for this fraction of the smallest limit (at least twice the call's estimate).
    lease_fraction: Decimal = Decimal("0.05")
    #: Seconds a "no limit here" answer (or an exhausted budget) is trusted before asking again.
    recheck_after: float = 2.0
    #: What to reserve for a model without a price: "estimate" (at `fallback_prices`),
    #: "block" (refuse the call), "allow" (reserve nothing; the call counts when priced).
    unpriced_calls: str = "estimate"
    #: Conservative rates for models without a price (genai-prices price keys, USD).
    fallback_prices: Any = None
    #: When the budget source (a server) cannot be asked: "open" or "closed".
    unreachable: str = "open"
    #: "adaptive" or "worst_case" (see the module's docstring).
    reservation: str = "adaptive"


RESERVATION_POLICIES = ("adaptive", "worst_case")

#: Output tokens a fallback reservation assumes for a model with too few observed calls.
DEFAULT_OBSERVED_OUTPUT_TOKENS = 1_024
#: Calls of a model observed before their percentile is trusted, and how many are kept.
MIN_OBSERVED, MAX_OBSERVED = 8, 200


class Observed:
    """Output tokens of this process's recent settled calls, per (provider, model)."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str | None, str | None], deque[int]] = {}

    def add(self, key: tuple[str | None, str | None], output_tokens: int) -> None:
        calls = self._calls.get(key)
        if calls is None:
            if len(self._calls) > 4096:
                self._calls.clear()
            calls = self._calls[key] = deque(maxlen=MAX_OBSERVED)
        calls.append(output_tokens)

    def output_tokens(self, key: tuple[str | None, str | None]) -> int:
        """The 95th percentile of the model's observed output tokens (the default without enough)."""
        calls = self._calls.get(key)
        if calls is None or len(calls) < MIN_OBSERVED:
            return DEFAULT_OBSERVED_OUTPUT_TOKENS
        ordered = sorted(calls)
        return ordered[min(len(ordered) - 1, (len(ordered) * 95 + 99) // 100 - 1)]


class Reservation:
    """A call's claim on its tenant's budget, from the check until the real cost is known."""

    __slots__ = ("budget", "estimate_usd", "lease_id", "tokens", "window_entry", "settled", "model", "fallback",
                 "record", "claimed", "result")

    def __init__(self, budget: Budget, estimate_usd: Decimal, lease_id: str | None, tokens: int,
                 window_entry: list | None) -> None:
        self.budget = budget
        self.estimate_usd = estimate_usd
        self.lease_id = lease_id
        self.tokens = tokens
        self.window_entry = window_entry
        self.settled = False
        #: (provider, model): the settled call's output tokens are observed under it.
        self.model: tuple[str | None, str | None] | None = None
        #: True when less than the worst case was reserved (the adaptive policy's fallback).
        self.fallback = False
        #: What settles the call once it ended (set by `finished`; opaque here), whether someone
        #: took it to settle, and what that settlement gave (opaque: the settler's).
        self.record: Any = None
        self.claimed = False
        self.result: Any = None

    @property
    def tenant_id(self) -> str:
        return self.budget.tenant_id


def _opened(reservation: Reservation) -> Reservation:
    """Under the guard's lock: a new reservation, counted among its budget's open ones."""
    reservation.budget.open.add(reservation)
    return reservation


class Budget:
    """One tenant's budget in this process: its lease, what is reserved against it, its rates."""

    __slots__ = ("tenant_id", "lease_id", "remaining", "reserved", "expires", "checked_until", "unlimited",
                 "states", "requests_per_minute", "tokens_per_minute", "window", "last_used", "exhausted_until",
                 "worst_refused_until",
                 "refilling", "remaining_at_grant", "open", "settling")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.lease_id: str | None = None
        #: The lease's budget not yet spent, as this process sees it.
        self.remaining = _ZERO
        #: Open reservations against it.
        self.reserved = _ZERO
        self.expires = 0.0  # monotonic time the lease lapses
        self.checked_until = 0.0  # monotonic time until which "no limit" is trusted
        self.exhausted_until = 0.0  # monotonic time until which "the store has no more" is trusted
        #: Adaptive policy: until then, the store could not cover a worst case (ask for less).
        self.worst_refused_until = 0.0
        self.refilling = threading.Lock()  # held while this process asks the store for more
        self.remaining_at_grant = _ZERO  # the lease's budget as the store saw it at the last grant
        self.unlimited = False
        self.states: tuple = ()
        self.requests_per_minute: int | None = None
        self.tokens_per_minute: int | None = None
        #: [monotonic time, tokens] of the calls of the last minute, for rate limits.
        self.window: deque[list] = deque()
        self.last_used = 0.0
        #: Reservations not settled yet: of calls under way, and of calls that ended (their
        #: `record` set) waiting for the worker.
        self.open: set[Reservation] = set()
        #: Held while finished calls are settled (by the worker, or by a caller short of budget).
        self.settling = threading.Lock()

    @property
    def free(self) -> Decimal:
        return self.remaining - self.reserved


class Guard:
    def __init__(self, store: Store, pricer: Callable[[], Pricer], settings: GuardSettings | None = None,
                 settle: Callable[[Any], None] | None = None) -> None:
        self.store = store
        self._pricer = pricer
        #: Settles a finished call (`finished(reservation, record)`): prices it and calls `settle`.
        self._settle_record = settle
        self.settings = settings or GuardSettings()
        self._lock = threading.Lock()
        self._budgets: dict[str, Budget] = {}
        self._prices: dict[tuple[str | None, str | None, str | None], Any] = {}
        self._fallback: RateSheet | None = None
        self._warned: set[tuple[str | None, str | None]] = set()
        self._unreachable_warned: set[str] = set()
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.observed = Observed()

    # -- the caller's thread --------------------------------------------------------------------

    def unlimited(self, tenant_id: str) -> bool:
        """True when the tenant is known to have neither a limit nor a rate limit (the common
        case, asked first and cheaply on every call)."""
        budget = self._budgets.get(tenant_id)
        if (budget is None or not budget.unlimited or budget.requests_per_minute is not None
                or budget.tokens_per_minute is not None):
            return False
        now = time.monotonic()
        if now >= budget.checked_until + _STALE_UNLIMITED:
            return False  # long out of date: `check` asks again on this thread
        budget.last_used = now  # the worker keeps the answer fresh while the tenant is active
        return True

    def check(self, request: CallRequest) -> Reservation | None | object:
        """Reserve the call's worst case in memory: a Reservation, None (no limit applies), or
        NEEDS_LEASE (then `refill`). Raises LimitExceededException."""
        tenant = request.tenant_id
        budget = self._budgets.get(tenant)
        if budget is None:
            return NEEDS_LEASE
        now = time.monotonic()
        if budget.unlimited:
            # "No limit" is re-asked on the background worker (`maintain`); the caller's thread
            # only asks itself when that answer is long out of date.
            budget.last_used = now
            if now >= budget.checked_until + _STALE_UNLIMITED:
                return NEEDS_LEASE
            if budget.requests_per_minute is None and budget.tokens_per_minute is None:
                return None
        estimate, tokens = self.estimate(request)
        with self._lock:
            reservation = self._reserve(budget, now, estimate, tokens)
        if reservation is None and budget.open and self.settle_finished(budget):
            with self._lock:
                reservation = self._reserve(budget, now, estimate, tokens)
        if reservation is not None:
            return self._mark(reservation, request)
        if now < budget.exhausted_until:
            # The store had nothing more a moment ago, and this process freed too little since.
            fallback = self._fallback_amount(request, estimate)
            if fallback is not None:
                with self._lock:
                    reservation = self._reserve(budget, now, fallback, tokens)
                if reservation is not None:
                    return self._mark(reservation, request, fallback=True)
            with self._lock:
                raise self._refusal(budget, estimate if fallback is None else fallback)
        return NEEDS_LEASE

    def _mark(self, reservation: Reservation, request: CallRequest, fallback: bool = False) -> Reservation:
        reservation.model = (request.provider, request.model)
        reservation.fallback = fallback
        return reservation

    def _fallback_amount(self, request: CallRequest, worst: Decimal) -> Decimal | None:
        """The adaptive policy's reservation for a call whose worst case does not fit: its input
        plus the observed output of recent calls of its model, capped at the worst case. None
        when the policy is worst_case or this would reserve no less."""
        if self.settings.reservation != "adaptive":
            return None
        sheet = self._sheet(request.provider, request.model, request.service_tier)
        if sheet is None:
            return None
        guess = request.estimate()
        output = min(guess.output_tokens, self.observed.output_tokens((request.provider, request.model)))
        amount = sheet.worst_case(guess.input_tokens, output)
        return amount if amount < worst else None

    def refill(self, request: CallRequest) -> Reservation | None:
        """Ask the store for budget (one short transaction) and reserve the call's share of it
        at once. Runs on the caller's thread, or in a worker thread for async callers. Raises
        LimitExceededException when the limits leave too little."""
        tenant = request.tenant_id
        with self._lock:
            budget = self._budgets.get(tenant) or self._budgets.setdefault(tenant, Budget(tenant))
        estimate, tokens = self.estimate(request)
        if budget.open:
            self.settle_finished(budget)  # what the lease asks for counts their real costs
        # One refill per tenant at a time: the threads that queue behind it usually find the
        # budget it brought back enough, without a trip to the store of their own.
        with budget.refilling:
            now = time.monotonic()
            if budget.states or budget.unlimited:
                with self._lock:
                    if budget.unlimited and now < budget.checked_until:
                        return self._mark_maybe(self._reserve(budget, now, estimate, tokens), request)
                    if not budget.unlimited:
                        reservation = self._reserve(budget, now, estimate, tokens)
                        if reservation is not None:
                            return self._mark(reservation, request)
            if time.monotonic() >= budget.worst_refused_until:
                try:
                    return self._mark_maybe(self._grant(budget, estimate, tokens), request)
                except LimitExceededException:
                    if self._fallback_amount(request, estimate) is None:
                        raise
                    budget.worst_refused_until = budget.exhausted_until
            fallback = self._fallback_amount(request, estimate)
            if fallback is None:  # the policy changed meanwhile
                return self._mark_maybe(self._grant(budget, estimate, tokens), request)
            # "Exhausted" now means: not even the fallback could be covered.
            budget.exhausted_until = 0.0
            reservation = self._grant(budget, fallback, tokens)
            return self._mark(reservation, request, fallback=True) if reservation is not None else None

    def _mark_maybe(self, reservation: Reservation | None, request: CallRequest) -> Reservation | None:
        return self._mark(reservation, request) if reservation is not None else None

    def _reserve(self, budget: Budget, now: float, estimate: Decimal, tokens: int) -> Reservation | None:
        """Under the lock: take the call's rate and reserve its estimate, or None if it does not fit."""
        if not budget.unlimited and not (now < budget.expires and estimate <= budget.free):
            return None
        entry = self._take_rate(budget, now, tokens)  # raises when over a rate limit
        if budget.unlimited:
            return _opened(Reservation(budget, _ZERO, None, tokens, entry)) if entry is not None else None
        budget.reserved += estimate
        budget.last_used = now
        return _opened(Reservation(budget, estimate, budget.lease_id, tokens, entry))

    def _grant(self, budget: Budget, estimate: Decimal, tokens: int | None) -> Reservation | None:
        """Lease more budget from the store; with `tokens`, reserve the call in the same step."""
        now = time.monotonic()
        lease_id = budget.lease_id if now < budget.expires else None
        free = budget.free if lease_id is not None else -budget.reserved
        need = max(_ZERO, estimate - free)
        smallest = min((s.limit.limit_usd for s in budget.states), default=_ZERO)
        want = max(need + estimate, smallest * self.settings.lease_fraction)
        try:
            grant = self.store.grant(budget.tenant_id, self.holder, want, need=need, ttl=self.settings.lease_ttl,
                                     lease_id=lease_id,
                                     # The limits are unknown here before a first grant: the store sizes it.
                                     want_fraction=None if budget.states else self.settings.lease_fraction)
        except BudgetsUnavailable as exc:
            return self._unreachable(budget, estimate, tokens, exc)
        rate = self.store.rate_limit_for(budget.tenant_id)
        now = time.monotonic()  # the lease's life starts when the answer arrives
        with self._lock:
            budget.requests_per_minute = rate.requests_per_minute if rate else None
            budget.tokens_per_minute = rate.tokens_per_minute if rate else None
            budget.checked_until = now + self.settings.recheck_after
            budget.states = grant.states
            budget.unlimited = grant.unlimited
            if grant.unlimited:
                budget.lease_id, budget.remaining, budget.expires = None, _ZERO, 0.0
            elif grant.lease_id != budget.lease_id:
                # A new lease: what is still reserved belongs to calls of the old one, which
                # settle against it; this process counts them against the new one too (safe side).
                budget.lease_id = grant.lease_id
                budget.remaining = grant.remaining_usd
                budget.expires = now + self.settings.lease_ttl
            else:
                budget.remaining += grant.granted_usd
                budget.expires = now + self.settings.lease_ttl
            budget.remaining_at_grant = grant.remaining_usd
            if tokens is None:
                return None
            reservation = self._reserve(budget, time.monotonic(), estimate, tokens)
            if reservation is None and not budget.unlimited:
                budget.exhausted_until = now + self.settings.recheck_after
                raise self._refusal(budget, estimate)
            return reservation

    def _unreachable(self, budget: Budget, estimate: Decimal, tokens: int | None,
                     exc: BudgetsUnavailable) -> Reservation | None:
        """The server cannot be asked for budget: fail open (judge by the last known state and
        this process's own spend since) or closed (refuse), as configured."""
        if budget.tenant_id not in self._unreachable_warned:
            self._unreachable_warned.add(budget.tenant_id)
            logger.warning("tollmeter: cannot ask the server for %r's budget (%s); failing %s",
                           budget.tenant_id, exc, self.settings.unreachable)
        if tokens is None:
            return None
        if self.settings.unreachable == "closed":
            raise LimitExceededException(
                budget.tenant_id, limit="server unreachable", estimated_cost_usd=estimate,
                message=f"the metering server cannot be reached to check {budget.tenant_id!r}'s "
                        "limits, and limits are set to fail closed")
        now = time.monotonic()
        with self._lock:
            if budget.states and not budget.unlimited:
                binding = min(budget.states, key=lambda s: s.available_usd)
                spent_since = max(_ZERO, budget.remaining_at_grant - budget.remaining)
                left = binding.available_usd + budget.remaining_at_grant - spent_since - budget.reserved
                if estimate > left:
                    raise self._refusal(budget, estimate)
                budget.reserved += estimate
                budget.last_used = now
                return _opened(Reservation(budget, estimate, None, tokens, None))
            # Nothing known about this tenant: let the call through, counted locally.
            return _opened(Reservation(budget, _ZERO, None, tokens, None))

    def estimate(self, request: CallRequest) -> tuple[Decimal, int]:
        """The call's worst-case cost and tokens."""
        guess = request.estimate()
        sheet = self._sheet(request.provider, request.model, request.service_tier)
        tokens = guess.input_tokens + guess.output_tokens
        if sheet is None:
            return _ZERO, tokens
        return sheet.worst_case(guess.input_tokens, guess.output_tokens), tokens

    def _sheet(self, provider: str | None, model: str | None, tier: str | None) -> RateSheet | None:
        key = (provider, model, tier)
        try:
            match: PriceMatch | None = self._prices[key]
        except KeyError:
            match = self._pricer().match(provider, model, service_tier=tier) if model else None
            self._prices[key] = match
        if match is not None:
            return match.sheet
        policy = self.settings.unpriced_calls
        if (provider, model) not in self._warned:
            self._warned.add((provider, model))
            logger.warning(
                "tollmeter: no price for %r (provider %r): limits reserve its calls %s", model, provider,
                {"estimate": "at the fallback prices", "block": "by refusing them",
                 "allow": "as free until priced"}[policy],
            )
        if policy == "block":
            raise LimitExceededException(
                None, limit="unpriced model", message=f"no price is known for model {model!r} "
                f"(provider {provider!r}) and unpriced calls are blocked for tenants with limits")
        if policy == "allow":
            return None
        return self.fallback_sheet()

    def fallback_sheet(self) -> RateSheet:
        if self._fallback is None:
            from ..pricing.rates import RateSheet

            prices = self.settings.fallback_prices or {"input_mtok": "15", "output_mtok": "75"}
            self._fallback = RateSheet({k: Decimal(str(v)) for k, v in prices.items()})
        return self._fallback

    def _take_rate(self, budget: Budget, now: float, tokens: int) -> list | None:
        rpm, tpm = budget.requests_per_minute, budget.tokens_per_minute
        if rpm is None and tpm is None:
            return None
        window = budget.window
        while window and window[0][0] <= now - 60:
            window.popleft()
        if rpm is not None and len(window) + 1 > rpm:
            raise self._rate_refusal(budget, f"{rpm} requests per minute", window[0][0] + 60 - now)
        if tpm is not None and sum(e[1] for e in window) + tokens > tpm:
            raise self._rate_refusal(budget, f"{tpm} tokens per minute", window[0][0] + 60 - now if window else 60)
        entry = [now, tokens]
        window.append(entry)
        return entry

    # -- the background worker ------------------------------------------------------------------

    def finished(self, reservation: Reservation, record: Any) -> None:
        """The call holding `reservation` ended (caller's thread; no lock: one attribute): it
        waits for settlement, which `settle_finished` or the worker (`settle_one`) do by
        settling `record`."""
        reservation.record = record

    def settle_one(self, reservation: Reservation) -> None:
        """Settle one finished call unless a caller short of budget already did (the worker)."""
        budget = reservation.budget
        with budget.settling:
            with self._lock:
                if reservation.claimed:
                    return
                reservation.claimed = True
            self._settle(reservation.record)

    def settle_finished(self, budget: Budget) -> bool:
        """Settle every finished call of the tenant now (a caller whose call did not fit).
        True if any was settled."""
        with budget.settling:
            with self._lock:
                todo = [r for r in budget.open if r.record is not None and not r.claimed]
                for reservation in todo:
                    reservation.claimed = True
            for reservation in todo:
                self._settle(reservation.record)
        return bool(todo)

    def _settle(self, record: Any) -> None:
        if self._settle_record is None:
            raise RuntimeError("this guard was made without a way to settle calls")
        self._settle_record(record)

    def settle(self, reservation: Reservation, actual_usd: Decimal | None, actual_tokens: int | None,
               output_tokens: int | None = None) -> None:
        """Replace a reservation by what the call cost (None: the reservation stands as spent)."""
        cost = reservation.estimate_usd if actual_usd is None else actual_usd
        budget = reservation.budget
        with self._lock:
            if reservation.settled:
                return
            if output_tokens is not None and reservation.model is not None:
                self.observed.add(reservation.model, output_tokens)
            reservation.settled = True
            budget.open.discard(reservation)
            budget.reserved -= reservation.estimate_usd
            if not budget.unlimited:  # spent from the lease (or, offline, from what was known)
                budget.remaining -= cost
            if reservation.window_entry is not None and actual_tokens is not None:
                reservation.window_entry[1] = actual_tokens

    def release(self, reservation: Reservation) -> None:
        """The call was never sent: its reservation goes back whole."""
        budget = reservation.budget
        with self._lock:
            if reservation.settled:
                return
            reservation.settled = True
            budget.open.discard(reservation)
            budget.reserved -= reservation.estimate_usd
            if reservation.window_entry is not None:
                try:
                    budget.window.remove(reservation.window_entry)
                except ValueError:
                    pass

    def unpriced_cost(self, usage_counts: dict[str, int]) -> Decimal | None:
        """What an unpriced call counts against limits, by the policy."""
        if self.settings.unpriced_calls == "estimate":
            return self.fallback_sheet().cost(usage_counts)
        if self.settings.unpriced_calls == "allow":
            return _ZERO
        return None

    def maintain(self) -> None:
        """Renew leases that calls still reserve against; give idle ones back."""
        now = time.monotonic()
        for budget in list(self._budgets.values()):
            if budget.unlimited:
                if now >= budget.checked_until and now - budget.last_used < _STALE_UNLIMITED:
                    try:
                        with budget.refilling:
                            self._grant(budget, _ZERO, None)  # still no limit? (a limit set elsewhere)
                    except BudgetsUnavailable:
                        pass
                continue
            if budget.lease_id is None:
                continue
            try:
                if budget.reserved > 0 and budget.expires - now < self.settings.lease_ttl / 2:
                    with budget.refilling:
                        self._grant(budget, _ZERO, None)
                elif budget.reserved == 0 and now - budget.last_used > self.settings.lease_ttl / 2:
                    self._return(budget)
            except BudgetsUnavailable:
                continue  # the lease lapses on the server; asked again on the next call

    def _return(self, budget: Budget) -> None:
        with self._lock:
            lease_id, budget.lease_id = budget.lease_id, None
            budget.remaining, budget.expires = _ZERO, 0.0
        if lease_id is not None:
            self.store.release(lease_id)

    def forget(self, tenant_id: str | None = None) -> None:
        """Limits changed: drop what this process knew (its leases were revoked by the store)."""
        with self._lock:
            targets = [self._budgets[tenant_id]] if tenant_id in self._budgets else (
                list(self._budgets.values()) if tenant_id is None else [])
            for budget in targets:
                budget.lease_id, budget.remaining, budget.expires = None, _ZERO, 0.0
                budget.checked_until = budget.exhausted_until = budget.worst_refused_until = 0.0
                budget.unlimited = False

    def close(self) -> None:
        for budget in list(self._budgets.values()):
            if budget.lease_id is not None:
                try:
                    self._return(budget)
                except Exception:  # shutting down: the lease lapses on its own
                    logger.debug("tollmeter: could not return a lease", exc_info=True)

    def reserved(self, tenant_id: str) -> Decimal:
        budget = self._budgets.get(tenant_id)
        return budget.reserved if budget is not None else _ZERO

    def has_limits(self, tenant_id: str) -> bool:
        budget = self._budgets.get(tenant_id)
        return budget is not None and not budget.unlimited

    # -- refusals -------------------------------------------------------------------------------

    def _refusal(self, budget: Budget, estimate: Decimal) -> LimitExceededException:
        binding = min(budget.states, key=lambda s: s.available_usd) if budget.states else None
        if binding is None:
            return LimitExceededException(budget.tenant_id, limit="spend", estimated_cost_usd=estimate)
        # The store's figures are those of the last lease request, before this process's latest
        # settlements reached it: add those, and count other processes' leases as reserved.
        settled_here = max(_ZERO, budget.remaining_at_grant - budget.remaining)
        others = max(_ZERO, binding.leased_usd - budget.remaining_at_grant)
        return LimitExceededException(
            budget.tenant_id, limit=binding.limit.frequency, limit_usd=binding.limit.limit_usd,
            spent_usd=binding.spent_usd + settled_here, reserved_usd=budget.reserved + others,
            estimated_cost_usd=estimate, period=binding.limit.frequency, resets_at=binding.resets_at,
        )

    def _rate_refusal(self, budget: Budget, what: str, retry_in: float) -> RateLimitExceededException:
        from datetime import datetime, timedelta, timezone

        return RateLimitExceededException(
            budget.tenant_id, limit=what, period="per_minute",
            resets_at=datetime.now(timezone.utc) + timedelta(seconds=max(0.0, retry_in)),
            message=f"tenant {budget.tenant_id!r} is over its rate limit of {what}; retry in {retry_in:.1f}s",
        )
