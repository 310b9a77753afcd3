"""The seam between the instrumentation and what consumes its calls.

Everything under `instrument/` knows the consumer (the `Meter`) only through `CallHooks`: what
the current scope is, whether a call may go out, that it finished or was abandoned, and where
faults go. The few settings a provider module needs travel with it, in `InstrumentSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Protocol

if TYPE_CHECKING:
    from ..context import Scope
    from .call import Call


@dataclass(frozen=True)
class InstrumentSettings:
    #: Ask OpenAI-style streams for their usage when the caller did not (and hide the extra
    #: chunk): None where the provider's answer is known, True / False everywhere / nowhere, or
    #: a mapping of provider names to True / False over the default (MeterConfig.stream_usage).
    stream_usage: bool | Mapping[str, bool] | None = None
    #: Provider name by base-URL prefix, checked before the built-in attribution.
    provider_overrides: Mapping[str, str] = field(default_factory=dict)


class CallHooks(Protocol):
    """What the instrumentation asks of its consumer. Only `admit` may raise (on purpose:
    `LimitExceededException`); everything else must not."""

    settings: InstrumentSettings
    #: False: every wrapper steps aside at once (calls go straight to the SDK, unrecorded).
    active: bool

    def scope(self) -> Scope | None:
        """Who the call about to start is for."""

    def admit(self, call: Call) -> None:
        """Decide, before anything is sent, whether the call may go out (may raise)."""

    async def admit_async(self, call: Call) -> None:
        """`admit` for a coroutine caller: never blocks the event loop."""

    def finished(self, call: Call) -> None:
        """The call is over (complete, failed or cut short); called once per admitted call."""

    def abandoned(self, call: Call) -> None:
        """The call was admitted but its request was never sent (a manager never entered)."""

    def fault(self, exc: BaseException, what: str) -> None:
        """An instrumentation fault: report it; the application's call is unaffected."""
