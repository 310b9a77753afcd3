"""RemoteLedger: customers, resolutions, margin and leaks from the ingest server, for a Meter
whose events go to a server (`MeterConfig(url=...)`): `meter.upsert_customer()`,
`customer(s)()`, `margin()` and `leaks()` then read and write the server's ledger, with the
same arguments and the same return types as the embedded `Ledger` (store/ledger.py).

Run resolutions do not come through here: `meter.resolve()` queues them and they reach the
server in the next ingest batch, retried and spooled like events (business/runs.py).
`resolve()` below asks the server at once (`POST /v1/runs/{run_id}/resolve`).

Errors: what the server refuses (4xx) raises `PlanError` (a `ValueError`) with the server's
reason, a contradicting resolution `RunAlreadyResolved`, a missing or revoked API key
`PermissionError`; a server that cannot be asked (network error, timeout, 429, 5xx) raises
`LedgerUnavailable`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence
import httpx

from ..money import decimal_text
from ..transport.api import ServerApi, segment
from .plans import Plan, PlanError
from .wire import customer_from_dict, leak_from_dict, margin_from_dict, resolution_from_dict

if TYPE_CHECKING:
    from ..store.ledger import Customer, Resolution
    from .leaks import Leak, LeakSettings
    from .margin import MarginReport


class LedgerUnavailable(Exception):
    """The server could not be asked (network error, timeout, 429 or 5xx)."""


class RemoteLedger:
    #: Customers, runs and rollups are the server's.
    remote = True

    def __init__(self, ingest_url: str, api_key: str, *, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._api = ServerApi(ingest_url, api_key, timeout=timeout, transport=transport)
        self.base = self._api.base

    # -- customers --------------------------------------------------------------------------------

    def upsert_customer(self, tenant_id: str, *, name: str | None = None, plan: Plan | Mapping[str, Any] | None = None,
                        seats: int | None = None, effective_from: date | None = None) -> Customer:
        """Create or update a customer on the server (`PUT /v1/customers/{tenant_id}`). The
        plan is checked here first, so a bad one fails before anything is sent."""
        _check_id(tenant_id, "tenant_id")
        if effective_from is not None and (not isinstance(effective_from, date) or isinstance(effective_from, datetime)):
            raise PlanError(f"effective_from must be a date, got {effective_from!r}")
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if plan is not None:
            body["plan"] = Plan.of(plan).to_dict()
        if seats is not None:
            body["seats"] = seats
        if effective_from is not None:
            body["effective_from"] = effective_from.isoformat()
        return customer_from_dict(self._call("PUT", f"/v1/customers/{segment(tenant_id)}", json=body))

    def customer(self, tenant_id: str) -> Customer | None:
        _check_id(tenant_id, "tenant_id")
        data = self._call("GET", f"/v1/customers/{segment(tenant_id)}", missing_ok=True)
        return None if data is None else customer_from_dict(data)

    def customers(self, tenant_ids: Sequence[str] | None = None) -> list[Customer]:
        found = [customer_from_dict(item) for item in self._call("GET", "/v1/customers")["customers"]]
        if tenant_ids is not None:
            wanted = set(tenant_ids)
            found = [c for c in found if c.tenant_id in wanted]
        return found

    # -- runs -------------------------------------------------------------------------------------

    def resolve(self, run_id: str, outcome: str, *, revenue_usd: Any = None, tenant_id: str | None = None,
                agent_id: str | None = None, at: datetime | None = None, key: str | None = None) -> Resolution:
        """Resolve a run on the server now (`POST /v1/runs/{run_id}/resolve`)."""
        from .runs import RunResolution

        checked = RunResolution.checked(run_id, outcome, revenue_usd, tenant_id, agent_id, key, at)
        body = {k: v for k, v in checked.to_dict().items() if k != "run_id" and v is not None}
        return resolution_from_dict(self._call("POST", f"/v1/runs/{segment(run_id)}/resolve", json=body))

    # -- reports ----------------------------------------------------------------------------------

    def margin(self, group_by: Iterable[str] | str = ("tenant",), since: Any = None, until: Any = None,
               tenant_id: str | None = None) -> MarginReport:
        groups = [group_by] if isinstance(group_by, str) else list(group_by)
        params: list[tuple[str, str]] = [("group_by", ",".join(groups))]
        for name, value in (("since", since), ("until", until)):
            if value is not None:
                if not isinstance(value, (date, datetime)):
                    raise PlanError(f"since and until are dates or datetimes, got {value!r}")
                params.append((name, value.isoformat()))
        if tenant_id is not None:
            params.append(("tenant_id", tenant_id))
        return margin_from_dict(self._call("GET", "/v1/margin", params=params))

    def leaks(self, settings: LeakSettings | None = None, tenant_id: str | None = None) -> list[Leak]:
        params: dict[str, str] = {}
        if tenant_id is not None:
            params["tenant_id"] = tenant_id
        if settings is not None:
            for name in ("margin_floor_pct", "spike_factor", "spike_window_days", "spike_min_usd", "projection_days"):
                value = getattr(settings, name)
                params[name] = decimal_text(value) if isinstance(value, Decimal) else str(value)  # type: ignore[assignment]
        return [leak_from_dict(item) for item in self._call("GET", "/v1/leaks", params=params)["leaks"]]

    # -- HTTP -------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        try:
            response = self._api.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LedgerUnavailable(f"{method} {path}: {exc}") from exc
        status = response.status_code
        if status >= 500 or status == 429:
            raise LedgerUnavailable(f"{method} {path}: HTTP {status}")
        if status == 404 and missing_ok:
            return None
        if status >= 400:
            reason = _reason(response)
            if status in (401, 403):
                raise PermissionError(f"{method} {path}: HTTP {status}: {reason} (check the API key)")
            if status == 409:
                from ..store.ledger import RunAlreadyResolved

                raise RunAlreadyResolved(reason)
            raise PlanError(f"{method} {path}: HTTP {status}: {reason}")
        try:
            return response.json()
        except ValueError:
            raise LedgerUnavailable(f"{method} {path}: the answer is not JSON") from None

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> RemoteLedger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_id(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 255 or "\x00" in value:
        raise PlanError(f"{name} must be a non-empty string of at most 255 characters, got {value!r}")


def _reason(response: httpx.Response) -> str:
    """The server's `detail`: a sentence, or pydantic's list of errors made one."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:300]
    if isinstance(detail, list):
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg')}"
                         for e in detail if isinstance(e, dict))
    return str(detail)
