"""Runs from the application's side: `meter.resolve()` and `with meter.run(...) as run:`.

A resolution is checked at once (a bad outcome or amount raises ValueError then) and then
travels like an event: queued, written to the embedded store by the background worker or sent
to the server in the next batch (retried, spooled when the server is down), so that resolving a
run never waits on the network and is never lost. The store keeps the first resolution of a
run; a repeat is a no-op, and one that contradicts it is reported to `on_error`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from .plans import PlanError, check_text, money, outcome as check_outcome

if TYPE_CHECKING:
    from ..context import TenantScope


@dataclass(frozen=True)
class RunResolution:
    """A resolution on its way to the store."""

    run_id: str
    outcome: str
    revenue_usd: Decimal | None
    tenant_id: str | None
    agent_id: str | None
    resolved_at: datetime
    key: str | None

    @classmethod
    def checked(cls, run_id: Any, outcome: Any, revenue_usd: Any = None, tenant_id: Any = None,
                agent_id: Any = None, key: Any = None, resolved_at: datetime | None = None) -> RunResolution:
        for name, value, required in (("run_id", run_id, True), ("tenant_id", tenant_id, False),
                                      ("agent_id", agent_id, False), ("idempotency_key", key, False)):
            if value is not None or required:
                check_text(value, name)
        moment = resolved_at or datetime.now(timezone.utc)
        if moment.tzinfo is None:
            raise PlanError("resolved_at must be timezone-aware")
        return cls(run_id, check_outcome(outcome), money(revenue_usd, "revenue_usd"), tenant_id, agent_id,
                   moment.astimezone(timezone.utc), key)

    def to_dict(self) -> dict[str, Any]:
        """The wire form (the `resolutions` of an ingest batch)."""
        return {"run_id": self.run_id, "outcome": self.outcome,
                "revenue_usd": None if self.revenue_usd is None else format(self.revenue_usd, "f"),
                "tenant_id": self.tenant_id, "agent_id": self.agent_id,
                "resolved_at": self.resolved_at.isoformat(), "idempotency_key": self.key}


class Run:
    """`with meter.run("ticket-4711", tenant="acme", agent="support-bot") as run:` the calls
    inside are the run's (its tenant scope, run and agent ids); `run.resolve(...)` ends it. A
    run left unresolved stays open: its margin is known once it is resolved."""

    def __init__(self, run_id: str, tenant_id: str | None, agent_id: str | None, scope: TenantScope,
                 resolve: Callable[..., None]) -> None:
        self.run_id = run_id
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self._scope = scope
        self._resolve = resolve
        self.outcome: str | None = None

    def resolve(self, outcome: str = "resolved", *, revenue_usd: Any = None, idempotency_key: str | None = None) -> None:
        self._resolve(self.run_id, outcome, revenue_usd=revenue_usd, tenant_id=self.tenant_id,
                      agent_id=self.agent_id, idempotency_key=idempotency_key)
        self.outcome = outcome

    def __enter__(self) -> Run:
        self._scope.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._scope.__exit__(*exc_info)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)
