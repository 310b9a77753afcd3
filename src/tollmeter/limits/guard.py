"""The guard: a tenant over its allowance is stopped before the request leaves the process.

Before a call, the guard reserves the call's worst-case cost (`estimate.py`: the request's
input, its output cap at the output rate, times `n`). The check is in memory: each process
holds a *lease*, a slice of the tenant's remaining budget granted atomically by the store, and
reserves against it. When a lease runs short the guard asks the store for more (one short
transaction, not one per call); when the store has none left, the call is refused with
`LimitExceededException` and nothing is sent. After the call the reservation is replaced by
the real cost on the background worker, which writes the spend and takes it off the lease in
the same transaction. Until then the finished call's reservation still counts; a call that leaves
its lease short has its tenant's finished calls settled as it ends, on the guard's settling
thread (`settle_soon`), and a tenant whose next call does not fit settles its finished calls
first, on its own thread (`settle_finished`), so that a reservation already replaced in fact
never refuses a call.

The caller never waits long for the store or the server: a lease request runs on a background
thread (`circuit.Asker`) and the caller waits for its answer at most `wait` (MeterConfig
`limits_wait`, 50 ms); past it the call is decided by the `unreachable` policy and the request
goes on, its answer serving the next calls. Requests that keep failing open a circuit
(`circuit.Circuit`): calls then decide at once, until a probe from `maintain` (the worker's
upkeep) gets an answer. A tenant known to have no limit never waits: that answer is re-asked in
the background. See docs/limits.md, "When the server does not answer".

Because every reservation fits inside a lease and the leases of all processes together never
exceed what the limits leave (settled spend + leases <= limit, kept by the store), settled
spend exceeds a limit only by what calls cost beyond their reservation. See docs/limits.md.

Amounts here are whole picodollars (`picos`): integers on the caller's thread, rounded up when
reserved or spent and down when granted, so this process never sees more budget than the store.
A tenant without a limit, and a plain request that fits its lease, are decided in one look-up
(`admit_plain`: the table bound while the lease is ample, the estimate itself below that); a
lease asks for room for `LEASE_CALLS` calls, and a call that leaves it short has the calls
before it settled on the settling thread (`wake_line`).

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
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from ..pacing import hurried
from .circuit import Asker, Circuit
from . import picos
from .estimate import PER_REQUEST_TOKENS, token_rules
from .exceptions import LimitExceededException, RateLimitExceededException
from .mutex import TokenLock
from .remote import BudgetsUnavailable
from .settler import Settler

if TYPE_CHECKING:
    from ..pricing.pricer import PriceMatch, Pricer
    from ..pricing.rates import RateSheet
    from ..store.store import Store
    from .estimate import RequestFormat, SizeReader
    from .request import CallRequest

logger = logging.getLogger("tollmeter")

_ZERO = Decimal(0)

#: Seconds past its recheck after which the worker stops re-asking an idle tenant's "no limit"
#: answer; its next call has it re-asked in the background (never on the caller's thread).
_STALE_UNLIMITED = 60.0
#: `time.monotonic`, one global look-up away (`admit_plain` reads it before every call).
_monotonic = time.monotonic


class LeaseWaitExceeded(BudgetsUnavailable):
    """A lease request did not answer within the caller's bound (`GuardSettings.wait`)."""


class LimitsUnreachable(BudgetsUnavailable):
    """Reported to `on_error` when the circuit opens: lease requests keep failing, and calls
    decide by `limits_unreachable` without asking until the store or server answers again."""


_CIRCUIT_OPEN = BudgetsUnavailable("the circuit is open (recent lease requests failed)")

#: Returned by `Guard.check` when the local lease cannot cover the call: `refill`.
NEEDS_LEASE = object()
#: Returned by `Guard.admit_plain` when the call needs the full `check` (then `refill`).
NEEDS_CHECK = object()

#: The `limit` of a refusal by the "closed" policy (the budget source could not be asked).
_UNREACHABLE = ("server unreachable", "store unreachable")

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
    #: When the budget source (a server, or a locked store) cannot be asked: "open" or "closed".
    unreachable: str = "open"
    #: Seconds a call waits at most for a lease request's answer (MeterConfig.limits_wait).
    wait: float = 0.05
    #: Seconds a request may take in the background (renewals, releases, a caller's request
    #: after the caller stopped waiting): the HTTP timeout, or a store's lock wait.
    background_wait: float = 5.0
    #: Failures in a row (failed requests, waits that ran out) that open the circuit.
    circuit_failures: int = 3
    #: Seconds from opening to the first probe; doubled after each failed probe, at most probe_max.
    probe_after: float = 1.0
    probe_max: float = 30.0
    #: "adaptive" or "worst_case" (see the module's docstring).
    reservation: str = "adaptive"


RESERVATION_POLICIES = ("adaptive", "worst_case")

#: What a finished call used, as `Guard.trim_finished` reads it: (input tokens, output tokens,
#: the model and the service tier its event is priced by).
UsedTokens = tuple[int, int, "str | None", "str | None"]

#: A plain request reserves its table bound (`Guard.admit_plain`) while the lease's free budget is
#: at least this many such bounds; below that, its estimate (still at the first look).
AMPLE_BOUNDS = 16
#: A call whose reservation leaves its lease room for fewer than this many more like it has its
#: tenant's finished calls settled as soon as it ends (`wake_line`): twice the room the table
#: bound needs.
WAKE_CALLS = 2 * AMPLE_BOUNDS
#: A lease request asks for at least this many of the asking call's reservations (the store
#: grants at most a quarter of what the limits leave beyond the call's need): a limit only a few
#: worst cases large still leases room for the calls the worker has not settled yet, and a fresh
#: lease starts above the `WAKE_CALLS` line.
LEASE_CALLS = 3 * AMPLE_BOUNDS

#: Output tokens a fallback reservation assumes for a model with too few observed calls.
DEFAULT_OBSERVED_OUTPUT_TOKENS = 1_024
#: Calls of a model observed before their percentile is trusted, and how many are kept.
MIN_OBSERVED, MAX_OBSERVED = 8, 200


def wake_line(amount: int) -> int:
    """The one rule for settling early: a reservation of `amount` that leaves its lease less
    than this free (room for fewer than `WAKE_CALLS` more like it) leaves it short. The first
    such call since the last settlement (`Budget.wake_once`) is marked (`Reservation.urgent`),
    and as it ends it cuts the reservations of its tenant's finished calls to what they used
    (`Guard.trim_finished`, on its own thread: the lease has its room back at once) and the
    guard's settling thread settles them (`Guard.settle_soon`), off the caller's thread and
    whatever the worker is doing, while the lease still has room: while fewer than
    `AMPLE_BOUNDS` of them are free `admit_plain` reserves each call's estimate instead of its
    table bound, and when not even that fits, the next caller settles them itself
    (`settle_finished`) before it may be refused.
    (Besides this rule, a call admitted on less than its worst case, the adaptive policy's
    fallback, is always settled at once: what it used decides what the next ones reserve.)"""
    return amount * WAKE_CALLS


#: `wake_line` as `admit_plain` applies it, to the free budget before the reservation: free less
#: `amount` under `amount * WAKE_CALLS` is free under `amount * WAKE_BEFORE` (one multiplication
#: of the lease's large integers fewer, before every call).
WAKE_BEFORE = WAKE_CALLS + 1
#: A budget's plain reservations (`Budget.fresh`) are pruned of settled ones once they are this
#: many, or twice as many as were left unsettled by the last pruning.
FRESH_PRUNE = 64


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


class PlainBounds:
    """What `Guard.admit_plain` knows of one model's plain requests: the model's `token_rules`
    and its linear worst-case rates as whole picodollars per input token, per output token and
    per request, each rounded up (so the bound they price is at least `RateSheet.worst_case`'s,
    and equal to it for a price in whole micro-dollars per million tokens: every listed one).

    It also carries what it was looked up by (`provider`, `name`, `tier`, `format`: `admit_plain`
    compares the last one's by identity, the only object it reads for them), the format's
    size reader (`sized`; None for a model the table does not bound: `unbounded`) and its quick
    reader (`quick`: what `estimate_request` counts such a request by, for a lease that is not
    ample; None unless every rate is a whole number of picodollars, so that what `admit_plain`
    prices from it is what `Guard.estimate` prices, to the picodollar)."""

    __slots__ = ("num", "den", "most", "per_input", "per_output", "per_request", "uncapped", "model",
                 "provider", "name", "tier", "format", "sized", "quick", "per_used")

    def __init__(self, rules: tuple[int, int, int, int], rates: tuple[Decimal, Decimal, Decimal],
                 model: tuple[str | None, str], tier: str | None = None, request_format: RequestFormat | None = None,
                 sized: SizeReader | None = None, most: tuple[Decimal, Decimal, Decimal] | None = None) -> None:
        self.num, self.den, _, self.most = rules
        self.per_input, self.per_output, self.per_request = (picos.up(rate) for rate in rates)
        #: (per input token, per output token, per request) at the model's highest token rates,
        #: whole picodollars rounded up (`RateSheet.most_per_token`): what `Guard.trim_finished`
        #: prices a finished call's tokens at. None: its calls are not trimmed.
        self.per_used = None if most is None else tuple(picos.up(rate) for rate in most)
        exact = all(picos.up(rate) == picos.down(rate) for rate in rates)
        self.quick = request_format.quick if sized is not None and request_format is not None and exact else None
        #: What a request without an output cap, for one choice, reserves beside its counted
        #: input: the request's frame, the model's most output tokens and the per-request price.
        self.uncapped = self.amount((PER_REQUEST_TOKENS, self.most))
        #: (provider, model), shared by every reservation of the model.
        self.model = model
        self.provider, self.name = model
        self.tier = tier
        self.format = request_format
        self.sized = sized

    @classmethod
    def unbounded(cls, provider: str | None, model: str | None, tier: str | None,
                  request_format: RequestFormat | None) -> PlainBounds:
        """A model the table does not bound (its calls go the full way): `sized` is None."""
        return cls((1, 1, 0, 0), (_ZERO, _ZERO, _ZERO), (provider, model), tier, request_format, None)

    def amount(self, tokens: tuple[int, int]) -> int:
        """The worst case of (input, output) tokens in picodollars (what `admit_plain` reserves)."""
        return self.per_input * tokens[0] + self.per_output * tokens[1] + self.per_request

    def priced(self, counted: tuple[int, int, int | None, int]) -> int:
        """What a request counted by a `QuickReader` (text, fixed tokens, output cap per choice,
        choices) reserves: `counted_tokens` priced as `amount`. `admit_plain` writes it out for
        the table bound, which it prices before every call."""
        text, fixed, cap, choices = counted
        if self.num != 1:
            text = (text * self.num + self.den - 1) // self.den
        if cap is None and choices == 1:
            return self.per_input * (text + fixed) + self.uncapped
        return (self.per_input * (text + fixed + PER_REQUEST_TOKENS)
                + self.per_output * (self.most if cap is None else cap) * choices + self.per_request)


class Reservation:
    """A call's claim on its tenant's budget, from the check until the real cost is known."""

    __slots__ = ("budget", "amount", "lease_id", "window_entry", "settled", "model", "urgent",
                 "record", "claimed", "result", "bounds")

    def __init__(self, budget: Budget, amount: int, lease_id: str | None,
                 window_entry: list | None, model: tuple[str | None, str | None] | None = None) -> None:
        self.budget = budget
        #: What is reserved, in picodollars.
        self.amount = amount
        self.lease_id = lease_id
        #: [monotonic time, tokens] in the budget's rate window (None without a rate limit).
        self.window_entry = window_entry
        self.settled = False
        #: (provider, model): the settled call's output tokens are observed under it.
        self.model = model
        #: True when the call is to be settled as soon as it ends (`wake_line`, `settle_soon`).
        self.urgent = False
        #: What settles the call once it ended (set by `finished`; opaque here), whether someone
        #: took it to settle, and what that settlement gave (opaque: the settler's).
        self.record: Any = None
        self.claimed = False
        self.result: Any = None
        #: The `PlainBounds` of a plain request's reservation (`admit_plain`), by which its call
        #: may be trimmed once ended (`Guard.trim_finished`); None for the others.
        self.bounds: PlainBounds | None = None

    @property
    def tenant_id(self) -> str:
        return self.budget.tenant_id

    @property
    def estimate_usd(self) -> Decimal:
        return picos.usd(self.amount)


class PlainReservation(Reservation):
    """The reservation `Guard.admit_plain` makes: a `Reservation` whose fields it sets itself
    (a test holds them to `Reservation.__init__`'s). Made by the type's own call, without a
    Python `__init__`: one frame fewer than `Reservation(...)`, and cheaper than
    `object.__new__(Reservation)` (about 0.1 µs warm), before every call."""

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]


def _opened(reservation: Reservation) -> Reservation:
    """Under the guard's lock: a new reservation, counted among its budget's open ones."""
    reservation.budget.open.add(reservation)
    return reservation


class WaitNote:
    """What one call met while it asked for budget: its wait for an answer ran out (`waited`),
    and it was decided by the `unreachable` policy (`decided`). Counted once per call by
    `Guard.count` (an async caller whose refill came too late counts its own decision instead)."""

    __slots__ = ("waited", "decided")

    def __init__(self) -> None:
        self.waited = False
        self.decided = False


class _Claim:
    """A caller's claim on the answer of the lease request it started: its call is reserved as
    the answer is taken in (no other call can take the budget in between), unless the caller
    stopped waiting (`abandoned`; then the answer only fills the lease)."""

    __slots__ = ("estimate", "tokens", "answered", "abandoned", "reservation", "error")

    def __init__(self, estimate: int, tokens: int | None) -> None:
        self.estimate = estimate
        self.tokens = tokens
        self.answered = False
        self.abandoned = False
        self.reservation: Reservation | None = None
        self.error: LimitExceededException | None = None


class Budget:
    """One tenant's budget in this process: its lease, what is reserved against it, its rates."""

    __slots__ = ("tenant_id", "lease_id", "free", "_remaining", "expires", "checked_until", "unlimited",
                 "states", "requests_per_minute", "tokens_per_minute", "plain", "window", "last_used", "exhausted_until",
                 "worst_refused_until",
                 "remaining_at_grant", "open", "fresh", "prune_at", "settling", "asking", "ask_lock", "waking",
                 "settle_due")

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.lease_id: str | None = None
        #: The lease's budget neither spent nor reserved, as this process sees it (picodollars, as
        #: are the other amounts here): the one figure the first look reads and writes
        #: (`admit_plain`); `remaining` and `reserved` are views of it.
        self.free = 0
        self._remaining = 0
        self.expires = 0.0  # monotonic time the lease lapses
        self.checked_until = 0.0  # monotonic time until which "no limit" is trusted
        self.exhausted_until = 0.0  # monotonic time until which "the store has no more" is trusted
        #: Adaptive policy: until then, the store could not cover a worst case (ask for less).
        self.worst_refused_until = 0.0
        #: The tenant's lease request under way (on an Asker thread), if any: one at a time.
        self.asking: Future | None = None
        #: Held while a lease request of this tenant runs: one at a time (they share the lease).
        self.ask_lock = threading.Lock()
        self.remaining_at_grant = 0  # the lease's budget as the store saw it at the last grant
        self.unlimited = False
        self.states: tuple = ()
        self.requests_per_minute: int | None = None
        self.tokens_per_minute: int | None = None
        #: No rate limit (both of the above None): `admit_plain` may decide the call.
        self.plain = True
        #: [monotonic time, tokens] of the calls of the last minute, for rate limits.
        self.window: deque[list] = deque()
        self.last_used = 0.0
        #: Reservations not settled yet: of calls under way, and of calls that ended (their
        #: `record` set) waiting for the worker. Those of plain requests are in `fresh` instead.
        self.open: set[Reservation] = set()
        #: The reservations `admit_plain` made, settled or not: appended under the guard's lock (a
        #: list's append, not a set's insertion: it runs before every call; cold, the set's was
        #: 0.6 µs), pruned of settled ones by `prune_fresh` (`settle`, `release`, the upkeep).
        self.fresh: list[Reservation] = []
        self.prune_at = FRESH_PRUNE
        #: Held while finished calls are settled (by the worker, or by a caller short of budget).
        self.settling = threading.Lock()
        #: A call that left the lease short will have its tenant's calls settled as it ends, and
        #: nothing was settled since (`wake_once`).
        self.waking = False
        #: A settlement of this tenant's finished calls waits for the guard's settling thread
        #: (`Guard.settle_soon`).
        self.settle_due = False

    def wake_once(self) -> bool:
        """Under the guard's lock, for a reservation that left the lease short (`wake_line`):
        True (its call has the tenant's calls settled as it ends) unless another did since the
        last settlement."""
        if self.waking:
            return False
        self.waking = True
        return True

    @property
    def remaining(self) -> int:
        """The lease's budget not yet spent (set: what is reserved stays reserved)."""
        return self._remaining

    @remaining.setter
    def remaining(self, value: int) -> None:
        self.free += value - self._remaining
        self._remaining = value

    @property
    def reserved(self) -> int:
        """Open reservations against the lease (set: what is spent stays spent)."""
        return self._remaining - self.free

    @reserved.setter
    def reserved(self, value: int) -> None:
        self.free = self._remaining - value

    def has_open(self) -> bool:
        """Whether any reservation may be unsettled (a settled one in `fresh` may answer yes)."""
        return bool(self.open or self.fresh)

    def unsettled(self) -> list[Reservation]:
        """Under the guard's lock: every reservation not settled yet."""
        return [*self.open, *(r for r in self.fresh if not r.settled)]

    def prune_fresh(self, now: bool = False) -> None:
        """Under the guard's lock: `fresh` without its settled reservations, once they are many
        (in place: amortised over the appends), or `now` (the upkeep: an idle tenant's settled
        calls are not held)."""
        fresh = self.fresh
        if len(fresh) >= self.prune_at or (now and fresh):
            fresh[:] = [r for r in fresh if not r.settled]
            self.prune_at = max(FRESH_PRUNE, 2 * len(fresh))


class Guard:
    def __init__(self, store: Store, pricer: Callable[[], Pricer], settings: GuardSettings | None = None,
                 settle: Callable[[Any], None] | None = None,
                 fault: Callable[[BaseException, str], None] | None = None) -> None:
        self.store = store
        self._pricer = pricer
        #: Settles a finished call (`finished(reservation, record)`): prices it and calls `settle`.
        self._settle_record = settle
        self.settings = settings or GuardSettings()
        #: The guard's mutex: `admit_plain` takes it by popping `_tokens` (`TokenLock`), everything
        #: else with `with self._lock`.
        self._lock = TokenLock()
        self._tokens = self._lock.tokens
        self._budgets: dict[str, Budget] = {}
        self._prices: dict[tuple[str | None, str | None, str | None], Any] = {}
        #: (provider, model, tier, request format) -> its `PlainBounds` (`unbounded` for a model
        #: the table does not bound): see `admit_plain`.
        self._plain: dict[tuple, PlainBounds] = {}
        #: The last of them `admit_plain` looked up, its key compared by identity (no key built
        #: and hashed).
        self._last_plain = PlainBounds.unbounded(None, None, None, None)
        #: (provider, model, tier) -> `trim_finished`'s rates for calls answered by another model
        #: or tier than they asked for (`_used_rates`).
        self._most: dict[tuple, tuple[int, int, int] | None] = {}
        self._fallback: RateSheet | None = None
        self._warned: set[tuple[str | None, str | None]] = set()
        self._unreachable_warned: set[str] = set()
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self.observed = Observed()
        #: Reports a fault (on_error and the meter's count): the circuit opening.
        self._fault = fault
        self._source = "the metering server" if getattr(store, "remote", False) else "the store"
        self._asker = Asker()
        #: Settles the finished calls of a tenant whose lease ran short (`settle_soon`): one
        #: thread that does nothing else, so that neither the caller nor the worker's writes and
        #: deliveries hold it up.
        self._settler = Settler(self._settle_due)
        self.circuit = Circuit(self.settings.circuit_failures, self.settings.probe_after, self.settings.probe_max,
                               on_open=self._circuit_opened, on_close=self._circuit_closed)
        #: Calls whose wait for a lease ran out, and calls decided by the `unreachable` policy.
        self.waits_exceeded = 0
        self.decided_unreachable = 0

    # -- the caller's thread --------------------------------------------------------------------

    def admit_plain(self, tenant_id: str, provider: str | None, model: str | None, kwargs: Any,
                    request_format: RequestFormat | None) -> Reservation | None | object:
        """The caller's first look at a call, in one step: None when the tenant is known to have
        no limit (the common case); for a plain request, a Reservation of its table bound when
        the tenant's lease is ample, of its estimate when the lease is not but holds that; else
        NEEDS_CHECK (then `check` with the request). Never raises: anything unexpected is
        reported and goes the full way.

        The table bound (`estimate.upper_bound`) is at least the request's worst case: its input
        sized by the format's `sized` reader (an upper bound of the estimate's count), its output
        cap, priced by the model's rates in whole picodollars (`PlainBounds`); only for linear
        prices, where more tokens never cost less. Reserving more than the worst case keeps the
        bound; `AMPLE_BOUNDS` keeps it from mattering: a lease short of that many bounds has
        each call reserve its estimate, counted by the format's quick reader (what
        `estimate_request` counts such a request by) and priced by the same integer rates when
        they are the sheet's exactly (`PlainBounds.quick`): to the picodollar what `check`
        reserves, so what is refused, and when, does not change. One function, no request
        object, `counted_tokens`, `wake_line` and `Reservation.__init__` written out (tests hold
        them to `upper_bound`, `estimate` and `__init__`): it runs before every call."""
        try:
            budget = self._budgets.get(tenant_id)
            if budget is None or not budget.plain:
                return NEEDS_CHECK
            now = _monotonic()
            if budget.unlimited:  # `_used_unlimited`, inline: the common case
                budget.last_used = now
                if now >= budget.checked_until + _STALE_UNLIMITED:
                    self._recheck_soon(budget)
                return None
            if type(kwargs) is not dict or type(model) is not str:
                return NEEDS_CHECK
            tier = kwargs.get("service_tier")
            if tier is not None and type(tier) is not str:  # a StrEnum, say: the full way prices it
                return NEEDS_CHECK
            bounds = self._last_plain  # the last call's bounds: most calls name the same model
            if (bounds.name is not model or bounds.format is not request_format or bounds.provider is not provider
                    or bounds.tier is not tier):
                try:
                    bounds = self._plain[(provider, model, tier, request_format)]
                except KeyError:  # (no request format: `unbounded`)
                    bounds = self._plain_bounds(provider, model, tier, request_format)
                self._last_plain = bounds
            sized = bounds.sized  # the format's, on the bounds: one object fewer read (cold here)
            if sized is None:  # a model the table does not bound
                return NEEDS_CHECK
            try:  # `estimate.upper_bound`, its checks made above
                counted = sized(kwargs)
            except Exception:  # not plain after all: the walk never raises
                return NEEDS_CHECK
            if counted is None:
                return NEEDS_CHECK
            text, fixed, cap, choices = counted  # `counted_tokens`, priced as `PlainBounds.amount`
            if bounds.num != 1:
                text = (text * bounds.num + bounds.den - 1) // bounds.den
            if cap is None and choices == 1:  # `PlainBounds.amount`, the common case's part precomputed
                amount = bounds.per_input * (text + fixed) + bounds.uncapped
            else:
                amount = (bounds.per_input * (text + fixed + PER_REQUEST_TOKENS)
                          + bounds.per_output * (bounds.most if cap is None else cap) * choices + bounds.per_request)
            need = amount * AMPLE_BOUNDS
            if budget.free < need:  # not ample (read unlocked: decided again under the lock)
                # The estimate itself, to the picodollar what `check` reserves (`counted_tokens`
                # over the format's quick reader, priced by the same rates).
                quick = bounds.quick
                if quick is None:
                    return NEEDS_CHECK
                try:
                    counted = quick(kwargs)
                except Exception:
                    return NEEDS_CHECK
                if counted is None:
                    return NEEDS_CHECK
                need = amount = bounds.priced(counted)
            tokens = self._tokens  # the guard's lock, taken by one atomic `pop` (`TokenLock`)
            try:
                tokens.pop()
            except IndexError:  # held: the full way waits for it
                return NEEDS_CHECK
            try:
                free = budget.free
                if now < budget.expires and free >= need:  # the lease's expiry: here only
                    budget.free = free - amount
                    budget.last_used = now
                    reservation = PlainReservation()  # `Reservation(...)`, written out
                    reservation.budget = budget
                    reservation.amount = amount
                    reservation.lease_id = budget.lease_id
                    reservation.window_entry = None
                    reservation.settled = False
                    reservation.model = bounds.model
                    # `wake_line(amount)`, compared before the reservation
                    reservation.urgent = free < amount * WAKE_BEFORE and budget.wake_once()
                    reservation.record = None
                    reservation.claimed = False
                    reservation.result = None
                    reservation.bounds = bounds
                    budget.fresh.append(reservation)  # the set's `_opened`, cheaper
                    return reservation
            finally:
                tokens.append(True)
            return NEEDS_CHECK
        except Exception as fault:  # a bug here must not reach the host: the full way decides
            self._report(fault, "checking limits")
            return NEEDS_CHECK

    def _used_unlimited(self, budget: Budget, now: float) -> None:
        """A call of a tenant known to have no limit: the worker keeps that answer fresh while
        it is used, and one long out of date is asked again in the background."""
        budget.last_used = now
        if now >= budget.checked_until + _STALE_UNLIMITED:
            self._recheck_soon(budget)

    def _plain_bounds(self, provider: str | None, model: str, tier: str | None,
                      request_format: RequestFormat | None) -> PlainBounds:
        """`admit_plain`'s prices of one model (`PlainBounds.unbounded` for a model the table
        does not bound, and for an endpoint whose requests have no format)."""
        bounds = None
        sheet = None
        if model and request_format is not None and request_format.sized is not None:
            try:
                sheet = self._sheet(provider, model, tier)
            except LimitExceededException:  # unpriced and blocked: `check` refuses it
                sheet = None
        if sheet is not None and sheet.worst_case_rates is not None:
            bounds = PlainBounds(token_rules(model, request_format.claude_by_default), sheet.worst_case_rates,
                                 (provider, model), tier, request_format, request_format.sized,
                                 sheet.most_per_token())
        if bounds is None:
            bounds = PlainBounds.unbounded(provider, model, tier, request_format)
        if len(self._plain) >= 4096:
            self._plain.clear()
        self._plain[(provider, model, tier, request_format)] = bounds
        return bounds

    def _report(self, fault: BaseException, where: str) -> None:
        if self._fault is not None:
            try:
                self._fault(fault, where)
            except Exception:
                logger.debug("tollmeter: reporting a fault failed", exc_info=True)

    def check(self, request: CallRequest) -> Reservation | None | object:
        """Reserve the call's worst case in memory: a Reservation, None (no limit applies), or
        NEEDS_LEASE (then `refill`). Raises LimitExceededException."""
        tenant = request.tenant_id
        budget = self._budgets.get(tenant)
        if budget is None:
            return NEEDS_LEASE
        now = time.monotonic()
        if budget.unlimited:  # with a rate limit (`admit_plain` decided the others)
            self._used_unlimited(budget, now)
            if budget.plain:
                return None
        estimate, tokens = self.estimate(request)
        with self._lock:
            reservation = self._reserve(budget, now, estimate, tokens)
        if reservation is None and budget.has_open() and self.settle_finished(budget):
            with self._lock:
                reservation = self._reserve(budget, now, estimate, tokens)
        if reservation is not None:
            reservation.model = (request.provider, request.model)  # `_mark`, inline: every call
            return reservation
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
        if fallback:
            reservation.urgent = True
        return reservation

    def _fallback_amount(self, request: CallRequest, worst: int) -> int | None:
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
        amount = picos.up(sheet.worst_case(guess.input_tokens, output))
        return amount if amount < worst else None

    def refill(self, request: CallRequest, deadline: float | None = None,
               note: WaitNote | None = None) -> Reservation | None:
        """Ask the store for budget and reserve the call's share of it at once. Runs on the
        caller's thread, or in a worker thread for async callers; waits for the store at most
        until `deadline` (monotonic; default: `settings.wait` once the call is estimated, as
        pricing may still be loading at start-up), then decides by the `unreachable` policy.
        Raises LimitExceededException when the limits leave too little. What the call met is
        counted here, or written to `note` for the caller to count."""
        if note is not None:
            return self._refill(request, deadline, note)
        note = WaitNote()
        try:
            return self._refill(request, deadline, note)
        finally:
            self.count(note)

    def count(self, note: WaitNote) -> None:
        """Count what one call met (`stats`)."""
        if note.waited or note.decided:
            with self._lock:
                self.waits_exceeded += note.waited
                self.decided_unreachable += note.decided

    def _refill(self, request: CallRequest, deadline: float | None, note: WaitNote) -> Reservation | None:
        tenant = request.tenant_id
        with self._lock:
            budget = self._budgets.get(tenant) or self._budgets.setdefault(tenant, Budget(tenant))
        estimate, tokens = self.estimate(request)
        if budget.has_open():
            self.settle_finished(budget)  # what the lease asks for counts their real costs
        if deadline is None:
            deadline = time.monotonic() + self.settings.wait
        now = time.monotonic()
        if budget.states or budget.unlimited:
            with self._lock:
                if budget.unlimited:  # known to have no limit: never waits (re-asked in the background)
                    return self._mark_maybe(self._reserve(budget, now, estimate, tokens), request)
                reservation = self._reserve(budget, now, estimate, tokens)
                if reservation is not None:
                    return self._mark(reservation, request)
        if time.monotonic() >= budget.worst_refused_until:
            try:
                return self._mark_maybe(self._grant(budget, estimate, tokens, deadline, note), request)
            except LimitExceededException as refused:
                if refused.limit in _UNREACHABLE or self._fallback_amount(request, estimate) is None:
                    raise
                budget.worst_refused_until = budget.exhausted_until
        fallback = self._fallback_amount(request, estimate)
        if fallback is None:  # the policy changed meanwhile
            return self._mark_maybe(self._grant(budget, estimate, tokens, deadline, note), request)
        # "Exhausted" now means: not even the fallback could be covered.
        budget.exhausted_until = 0.0
        reservation = self._grant(budget, fallback, tokens, deadline, note)
        return self._mark(reservation, request, fallback=True) if reservation is not None else None

    def decide_now(self, request: CallRequest) -> Reservation | None:
        """The call's answer without waiting any longer (an async caller whose refill did not
        start in time): by the `unreachable` policy. Raises LimitExceededException."""
        tenant = request.tenant_id
        with self._lock:
            budget = self._budgets.get(tenant) or self._budgets.setdefault(tenant, Budget(tenant))
        estimate, tokens = self.estimate(request)
        with self._lock:
            if budget.unlimited:
                return self._mark_maybe(self._reserve(budget, time.monotonic(), estimate, tokens), request)
        note = WaitNote()
        note.waited = True
        exc = LeaseWaitExceeded(f"no budget answer for {tenant!r} within {self.settings.wait:g}s")
        try:
            return self._mark_maybe(self._unreachable(budget, estimate, exc, note), request)
        finally:
            self.count(note)

    def _mark_maybe(self, reservation: Reservation | None, request: CallRequest) -> Reservation | None:
        return self._mark(reservation, request) if reservation is not None else None

    def _reserve(self, budget: Budget, now: float, estimate: int, tokens: int) -> Reservation | None:
        """Under the lock: take the call's rate and reserve its estimate, or None if it does not fit."""
        if budget.unlimited:
            entry = self._take_rate(budget, now, tokens)  # raises when over a rate limit
            return _opened(Reservation(budget, 0, None, entry)) if entry is not None else None
        if not (now < budget.expires and estimate <= budget.free):
            return None
        if budget.plain:
            entry = None  # no rate limit (the common case: no call)
        else:
            entry = self._take_rate(budget, now, tokens)  # raises when over a rate limit
        budget.free -= estimate
        budget.last_used = now
        reservation = Reservation(budget, estimate, budget.lease_id, entry)
        budget.open.add(reservation)  # `_opened`, inline
        if budget.free < wake_line(estimate):
            reservation.urgent = budget.wake_once()
        return reservation

    def _grant(self, budget: Budget, estimate: int, tokens: int, deadline: float,
               note: WaitNote) -> Reservation | None:
        """Lease more budget and reserve the call from it. The request runs in the background
        (`_ask`, on an Asker thread) and the caller waits for its answer until `deadline` at
        most, then decides by the `unreachable` policy; with the circuit open, at once.

        One request per tenant at a time: callers that find one under way wait for its answer
        (it usually brings enough for them too), and ask themselves only if it did not."""
        claim: _Claim | None = None
        while True:
            with self._lock:
                if self.circuit.is_open:  # decide at once: not even a request under way is waited for
                    break
                pending = budget.asking
                if pending is None or pending.done():
                    claim = _Claim(estimate, tokens)
                    pending = budget.asking = self._asker.submit(self._ask, budget, estimate, False, claim)
            failed = self._wait(pending, deadline, claim, note)
            if failed is not None:
                return self._unreachable(budget, estimate, failed, note)
            if claim is not None:  # this call's own request: reserved as its answer was taken in
                return self._claimed(budget, claim)
            with self._lock:  # another caller's request answered: enough for this call too?
                reservation = self._reserve(budget, time.monotonic(), estimate, tokens)
                if reservation is not None or budget.unlimited:
                    return reservation
        self._probe_soon()
        return self._unreachable(budget, estimate, _CIRCUIT_OPEN, note)

    def _claimed(self, budget: Budget, claim: _Claim) -> Reservation | None:
        if claim.error is not None:
            raise claim.error
        if claim.reservation is None and claim.tokens is not None and not budget.unlimited:
            with self._lock:
                budget.exhausted_until = time.monotonic() + self.settings.recheck_after
                raise self._refusal(budget, claim.estimate)
        return claim.reservation

    def _wait(self, future: Future, deadline: float, claim: _Claim | None,
              note: WaitNote) -> BudgetsUnavailable | None:
        """Wait for a lease request until `deadline`: None when it answered, else why not.
        A caller that stops waiting for its own request gives up its claim on the answer."""
        began = time.monotonic()
        # The caller's wait began with its call (a call may send a second, smaller request after
        # a refusal): an answer since then means the source is answering.
        since = min(began, deadline - self.settings.wait)
        try:
            with hurried():  # the worker's pauses would lengthen a store write the answer waits for
                future.result(timeout=max(0.0, deadline - began))
        except FutureTimeout:
            with self._lock:
                if claim is not None:
                    if claim.answered:
                        return None  # answered as the wait ran out
                    claim.abandoned = True
                elif future.done() and future.exception() is None:
                    return None
            note.waited = True
            exc = LeaseWaitExceeded(f"{self._source} did not answer a lease request within "
                                    f"{self.settings.wait:g}s")
            self.circuit.failure(exc, since=since)
            return exc
        except BudgetsUnavailable as exc:
            return exc
        except Exception as exc:  # could not even be started (at interpreter shutdown)
            return BudgetsUnavailable(repr(exc))
        return None

    def _ask(self, budget: Budget, estimate: int, probe: bool = False, claim: _Claim | None = None) -> None:
        """One lease request (an Asker thread, or the worker's upkeep): ask the store for
        budget and take its answer into `budget`, reserving `claim`'s call from it in the same
        step unless its caller stopped waiting. Any failure raises BudgetsUnavailable and
        counts against the circuit; an answer closes it."""
        with budget.ask_lock:
            now = time.monotonic()
            with self._lock:
                lease_id = budget.lease_id if now < budget.expires else None
                free = budget.free if lease_id is not None else -budget.reserved
                need = max(0, estimate - free)
                smallest = min((s.limit.limit_usd for s in budget.states), default=_ZERO)
                want = max(need + estimate, picos.down(smallest * self.settings.lease_fraction),
                           estimate * LEASE_CALLS)
                # The limits are unknown here before a first grant: the store sizes it.
                want_fraction = None if budget.states else self.settings.lease_fraction
            try:
                grant = self.store.grant(budget.tenant_id, self.holder, picos.usd(want), need=picos.usd(need),
                                         ttl=self.settings.lease_ttl,
                                         lease_id=lease_id, want_fraction=want_fraction,
                                         wait=self.settings.background_wait)
                rate = self.store.rate_limit_for(budget.tenant_id, wait=self.settings.background_wait)
            except Exception as exc:
                failed = exc if isinstance(exc, BudgetsUnavailable) else BudgetsUnavailable(
                    f"{self._source} could not grant budget: {exc!r}")
                if failed is not exc:
                    failed.__cause__ = exc
                self.circuit.failure(failed, probe=probe)
                raise failed from exc
            now = time.monotonic()  # the lease's life starts when the answer arrives
            with self._lock:
                budget.requests_per_minute = rate.requests_per_minute if rate else None
                budget.tokens_per_minute = rate.tokens_per_minute if rate else None
                budget.plain = budget.requests_per_minute is None and budget.tokens_per_minute is None
                budget.checked_until = now + self.settings.recheck_after
                budget.states = grant.states
                budget.unlimited = grant.unlimited
                if grant.unlimited:
                    budget.lease_id, budget.remaining, budget.expires = None, 0, 0.0
                elif grant.lease_id != budget.lease_id:
                    # A new lease: what is still reserved belongs to calls of the old one, which
                    # settle against it; this process counts them against the new one too (safe side).
                    budget.lease_id = grant.lease_id
                    budget.remaining = picos.down(grant.remaining_usd)
                    budget.expires = now + self.settings.lease_ttl
                else:
                    budget.remaining += picos.down(grant.granted_usd)
                    budget.expires = now + self.settings.lease_ttl
                budget.remaining_at_grant = picos.down(grant.remaining_usd)
                if need > 0 and not grant.unlimited and picos.down(grant.granted_usd) < need:
                    # Too little left for the call that asked: the calls after it are refused
                    # from memory for a while, even when that call stopped waiting (a slow source).
                    budget.exhausted_until = now + self.settings.recheck_after
                if claim is not None and not claim.abandoned:
                    claim.answered = True
                    if claim.tokens is not None:
                        try:
                            claim.reservation = self._reserve(budget, now, claim.estimate, claim.tokens)
                        except LimitExceededException as refused:  # over a rate limit
                            claim.error = refused
        self.circuit.success()

    def _recheck_soon(self, budget: Budget) -> None:
        """Ask again in the background whether a tenant still has no limit (no one waits)."""
        pending = budget.asking
        if self.circuit.is_open or (pending is not None and not pending.done()):
            return
        budget.asking = self._asker.submit(self._ask, budget, 0)

    def _probe_soon(self) -> None:
        """The circuit is open: when a probe is due, one lease request in the background (for
        the tenant used last); its answer closes the circuit."""
        # A tenant whose request is under way is not probed with: that request's outcome
        # counts as well (and no tenant free: the probe waits for the next upkeep).
        budgets = [b for b in list(self._budgets.values()) if not b.ask_lock.locked()]
        if not budgets or not self.circuit.take_probe():
            return
        budget = max(budgets, key=lambda b: b.last_used)
        budget.asking = probe = self._asker.submit(self._ask, budget, 0, True)
        if probe.done() and probe.exception() is not None and not isinstance(probe.exception(), BudgetsUnavailable):
            self.circuit.failure(probe.exception(), probe=True)  # never ran (no thread at shutdown)

    def _circuit_opened(self, exc: BaseException) -> None:
        message = (f"{self._source} failed {self.circuit.failures} lease requests in a row (last: {exc}); "
                   f"calls now decide at once by limits_unreachable={self.settings.unreachable!r} "
                   f"until it answers again (probed in the background)")
        logger.warning("tollmeter: %s", message)
        fault = LimitsUnreachable(message)
        fault.__cause__ = exc
        self._report(fault, "asking for budget")

    def _circuit_closed(self) -> None:
        logger.warning("tollmeter: %s answers lease requests again; limits are checked as usual", self._source)
        self._unreachable_warned.clear()

    def _unreachable(self, budget: Budget, estimate: int, exc: BudgetsUnavailable,
                     note: WaitNote) -> Reservation | None:
        """The server cannot be asked for budget: fail open (judge by the last known state and
        this process's own spend since) or closed (refuse), as configured."""
        if budget.tenant_id not in self._unreachable_warned:
            self._unreachable_warned.add(budget.tenant_id)
            logger.warning("tollmeter: cannot ask %s for %r's budget (%s); failing %s",
                           self._source, budget.tenant_id, exc, self.settings.unreachable)
        note.decided = True
        if self.settings.unreachable == "closed":
            remote = self._source == "the metering server"
            raise LimitExceededException(
                budget.tenant_id, limit="server unreachable" if remote else "store unreachable",
                estimated_cost_usd=picos.usd(estimate),
                message=f"{self._source} cannot be reached to check {budget.tenant_id!r}'s "
                        f"limits ({exc}), and limits are set to fail closed")
        now = time.monotonic()
        with self._lock:
            if budget.states and not budget.unlimited:
                binding = min(budget.states, key=lambda s: s.available_usd)
                spent_since = max(0, budget.remaining_at_grant - budget.remaining)
                left = picos.down(binding.available_usd) + budget.remaining_at_grant - spent_since - budget.reserved
                if estimate > left:
                    raise self._refusal(budget, estimate)
                budget.free -= estimate
                budget.last_used = now
                return _opened(Reservation(budget, estimate, None, None))
            # Nothing known about this tenant: let the call through, counted locally.
            return _opened(Reservation(budget, 0, None, None))

    def estimate(self, request: CallRequest) -> tuple[int, int]:
        """The call's worst-case cost (picodollars, rounded up) and tokens."""
        guess = request.estimate()
        sheet = self._sheet(request.provider, request.model, request.service_tier)
        input_tokens, output_tokens = guess.input_tokens, guess.output_tokens
        if sheet is None:
            return 0, input_tokens + output_tokens
        rates = sheet.worst_case_rates  # `worst_case` without the call when it is linear
        if rates is not None:
            worst = rates[0] * input_tokens + rates[1] * output_tokens + rates[2]
        else:
            worst = sheet.worst_case(input_tokens, output_tokens)
        return picos.up(worst), input_tokens + output_tokens

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

    def settle_soon(self, budget: Budget) -> bool:
        """A call that left its tenant's lease short ended (`wake_line`; the caller's thread,
        after `trim_finished`): the tenant's finished calls are settled on the guard's settling
        thread, which does no I/O, whatever the worker is doing (a write to a locked store, a
        slow delivery: under a busy caller, an SQLite write alone was measured at 0.2-5.8 s of
        wall time for 16 events). The thread still needs the interpreter lock, which a busy
        caller can keep from it for seconds (`trim_finished`). False when that thread cannot be
        started (at interpreter shutdown): the caller then wakes the worker."""
        if budget.settle_due:  # one is waiting to run: it settles this call too
            return True
        budget.settle_due = True
        if self._settler.submit(budget):
            return True
        budget.settle_due = False
        return False

    def trim_finished(self, budget: Budget, used: Callable[[Any], UsedTokens | None]) -> int:
        """A call that left its tenant's lease short ended (`wake_line`; the caller's thread,
        before `settle_soon`): the table bounds and estimates its tenant's finished plain calls
        reserved are cut to what they used, their input and output tokens priced at the
        model's highest token rates (`PlainBounds.per_used`): at least what each will be settled
        at, so the lease has its room back now, whatever the settling thread and the worker are
        doing. (A call answered by a costlier model than it asked for, a dated snapshot, may
        have used more than its bound at the asked model's prices: its reservation is raised to
        that, never left below what it will be settled at.) A caller that runs in the
        interpreter without waiting for I/O (a loop of calls to a local server, a benchmark's
        fake transport) can keep both of them from the interpreter lock for seconds: a thread
        waiting for it is passed over each time the caller lets it go for a moment
        (docs/limits.md, "How a call is checked").

        Settlement replaces a cut reservation as it replaces any other. `used(record)` gives a
        finished call's `UsedTokens` without changing it (the worker may be building its event
        meanwhile), or None when they are not known or something else it reports is charged:
        its reservation stays whole. Every finished call looked at leaves `fresh` for `open`, so
        that none is read twice; and only when some were cut is the next call that leaves the
        lease short marked again (`wake_once`), so that calls that cannot be cut cost each short
        call nothing until they are settled. Returns how many were cut."""
        with self._lock:
            todo = [(reservation, reservation.record) for reservation in budget.fresh
                    if reservation.record is not None and not reservation.settled and not reservation.claimed]
        if not todo:
            return 0
        cut: dict[Reservation, int] = {}
        for reservation, record in todo:
            try:
                tokens = used(record)
                if tokens is None:
                    continue
                rates = self._used_rates(reservation.bounds, tokens[2], tokens[3])
            except Exception as fault:  # a reader's bug: that call keeps its reservation
                self._report(fault, "reading what a call used")
                continue
            if rates is not None:
                cut[reservation] = rates[0] * tokens[0] + rates[1] * tokens[1] + rates[2]
        looked = {reservation for reservation, _ in todo}
        with self._lock:
            for reservation in looked:
                if reservation.settled:
                    continue
                amount = cut.get(reservation)
                if amount is not None:  # (more, for a call answered by a costlier model than it asked for)
                    budget.free += reservation.amount - amount
                    reservation.amount = amount
                budget.open.add(reservation)
            budget.fresh[:] = [r for r in budget.fresh if r not in looked]
            if cut:
                budget.waking = False  # the next call that leaves the lease short is marked again
        return len(cut)

    def _used_rates(self, bounds: PlainBounds, model: str | None, tier: str | None) -> tuple[int, int, int] | None:
        """`trim_finished`'s rates for a call admitted by `bounds` whose event is priced as
        `model` at `tier` (the response's; the request's tier when it names none): the bounds'
        own when those are the request's, else that model's highest token rates in whole
        picodollars (kept per model), None when that price has tiers or refuses the call."""
        if tier is None:
            tier = bounds.tier
        if model == bounds.name and tier == bounds.tier:
            return bounds.per_used
        key = (bounds.provider, model, tier)
        try:
            return self._most[key]
        except KeyError:
            pass
        try:
            sheet = self._sheet(bounds.provider, model, tier) if model else None
        except LimitExceededException:  # unpriced and blocked
            sheet = None
        most = sheet.most_per_token() if sheet is not None else None
        rates = None if most is None else tuple(picos.up(rate) for rate in most)
        if len(self._most) >= 4096:
            self._most.clear()
        self._most[key] = rates
        return rates

    def _settle_due(self, budget: Budget) -> None:
        budget.settle_due = False  # before: a call that ends meanwhile has another one run
        try:
            self.settle_finished(budget)
        except Exception as fault:
            self._report(fault, "settling calls")

    def settle_finished(self, budget: Budget) -> bool:
        """Settle every finished call of the tenant now (a caller whose call did not fit).
        True if any was settled."""
        with budget.settling:
            with self._lock:
                todo = [r for r in budget.unsettled() if r.record is not None and not r.claimed]
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
        cost = reservation.amount if actual_usd is None else picos.up(actual_usd)
        budget = reservation.budget
        with self._lock:
            if reservation.settled:
                return
            if output_tokens is not None and reservation.model is not None:
                self.observed.add(reservation.model, output_tokens)
            reservation.settled = True
            # Settled: its call is no longer needed here, and no cycle (call -> ticket -> record
            # -> call) is left for the collector: the call goes when the worker drops it.
            reservation.record = None
            budget.open.discard(reservation)
            budget.prune_fresh()
            budget.free += reservation.amount
            budget.waking = False  # the next call that leaves the lease short is marked again
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
            budget.prune_fresh()
            budget.free += reservation.amount
            budget.waking = False  # it may have been the marked call
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
        """The worker's upkeep: renew leases that calls still reserve against, give idle ones
        back, re-ask "no limit" answers of active tenants; while the circuit is open, only
        probe when a probe is due. The requests run on the Asker's threads (`background_wait`
        at most each): a hung server holds up neither a caller nor the worker's deliveries."""
        if self.circuit.is_open:
            self._probe_soon()
            return
        now = time.monotonic()
        for budget in list(self._budgets.values()):
            if self.circuit.is_open:
                return
            with self._lock:
                budget.prune_fresh(now=True)
                pending = budget.asking
                if budget.ask_lock.locked() or (pending is not None and not pending.done()):
                    continue  # a request of this tenant is under way: it renews the lease too
                if budget.unlimited:
                    # Still no limit? (a limit set elsewhere)
                    due = now >= budget.checked_until and now - budget.last_used < _STALE_UNLIMITED
                elif budget.lease_id is None:
                    continue
                else:
                    due = budget.reserved > 0 and budget.expires - now < self.settings.lease_ttl / 2
                    if budget.reserved == 0 and now - budget.last_used > self.settings.lease_ttl / 2:
                        budget.asking = self._asker.submit(self._give_back, budget)
                        continue
                if due:
                    budget.asking = self._asker.submit(self._ask, budget, 0)

    def _give_back(self, budget: Budget) -> None:
        """An idle lease goes back to the store (the worker's upkeep, on an Asker thread)."""
        try:
            self._return(budget)
        except Exception:  # the store did not take it: the lease lapses on its own
            logger.debug("tollmeter: could not return an idle lease", exc_info=True)

    def _return(self, budget: Budget) -> None:
        with self._lock:
            lease_id, budget.lease_id = budget.lease_id, None
            budget.remaining, budget.expires = 0, 0.0
        if lease_id is not None:
            self.store.release(lease_id)

    def forget(self, tenant_id: str | None = None) -> None:
        """Limits changed: drop what this process knew (its leases were revoked by the store)."""
        with self._lock:
            targets = [self._budgets[tenant_id]] if tenant_id in self._budgets else (
                list(self._budgets.values()) if tenant_id is None else [])
            for budget in targets:
                budget.lease_id, budget.remaining, budget.expires = None, 0, 0.0
                budget.checked_until = budget.exhausted_until = budget.worst_refused_until = 0.0
                budget.unlimited = False

    def close(self) -> None:
        """Give the leases back (in the background, `background_wait` at most in all); with
        the circuit open they are left to lapse on their own."""
        if self.circuit.is_open:
            return
        futures = [self._asker.submit(self._return, budget)
                   for budget in list(self._budgets.values()) if budget.lease_id is not None]
        deadline = time.monotonic() + self.settings.background_wait
        for future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # shutting down: the lease lapses on its own
                logger.debug("tollmeter: could not return a lease", exc_info=True)

    def reserved(self, tenant_id: str) -> Decimal:
        budget = self._budgets.get(tenant_id)
        return picos.usd(budget.reserved) if budget is not None else _ZERO

    def has_limits(self, tenant_id: str) -> bool:
        budget = self._budgets.get(tenant_id)
        return budget is not None and not budget.unlimited

    # -- refusals -------------------------------------------------------------------------------

    def _refusal(self, budget: Budget, estimate: int) -> LimitExceededException:
        binding = min(budget.states, key=lambda s: s.available_usd) if budget.states else None
        if binding is None:
            return LimitExceededException(budget.tenant_id, limit="spend", estimated_cost_usd=picos.usd(estimate))
        # The store's figures are those of the last lease request, before this process's latest
        # settlements reached it: add those, and count other processes' leases as reserved.
        settled_here = picos.usd(max(0, budget.remaining_at_grant - budget.remaining))
        others = max(_ZERO, binding.leased_usd - picos.usd(budget.remaining_at_grant))
        return LimitExceededException(
            budget.tenant_id, limit=binding.limit.frequency, limit_usd=binding.limit.limit_usd,
            spent_usd=binding.spent_usd + settled_here, reserved_usd=picos.usd(budget.reserved) + others,
            estimated_cost_usd=picos.usd(estimate), period=binding.limit.frequency, resets_at=binding.resets_at,
        )

    def _rate_refusal(self, budget: Budget, what: str, retry_in: float) -> RateLimitExceededException:
        from datetime import datetime, timedelta, timezone

        return RateLimitExceededException(
            budget.tenant_id, limit=what, period="per_minute",
            resets_at=datetime.now(timezone.utc) + timedelta(seconds=max(0.0, retry_in)),
            message=f"tenant {budget.tenant_id!r} is over its rate limit of {what}; retry in {retry_in:.1f}s",
        )
