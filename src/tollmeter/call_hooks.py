"""MeterHooks: what a Meter does at each point of an instrumented call (instrument.hooks).

Everything here runs on the caller's thread, so it does dictionary and ContextVar work only:
the scope, a limit check in memory (a store or server round trip only when a lease runs out),
and queueing the finished call for the background pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .context import Scope, scope_getter
from .instrument.endpoint import Endpoint
from .instrument.hooks import InstrumentSettings
from .limits.guard import NEEDS_CHECK, UsedTokens
from .limits.request import CallRequest

if TYPE_CHECKING:
    from .config import MeterConfig
    from .faults import Faults
    from .instrument.call import Call
    from .limits.estimate import RequestFormat
    from .limits.keeper import LimitKeeper
    from .pipeline import Pipeline


#: The scope in force (`context.current_scope`), as the ContextVar's own getter.
_current_scope = scope_getter()
#: `Endpoint.estimate`: by the endpoint's `request_format`.
_FORMAT_ESTIMATE = Endpoint.estimate


def used_tokens(call: Call) -> UsedTokens | None:
    """A finished call's input and output tokens for `Guard.trim_finished`, with the model and
    service tier its event is priced by (the response's: a dated snapshot may cost more than
    the alias asked for), read without changing the call (the worker may be building its event
    meanwhile): from its deferred usage by its format's `used` reader, or from its usage once
    read. None when they are not known, and when the call failed, was cut short, or reports
    something else that is charged (web searches, other units, audio tokens, a cost of its
    own): its reservation then stays whole until settled."""
    if (call.error is not None or call.partial or call.web_search_requests or call.units
            or call.provider_cost_usd is not None):
        return None
    deferred = call.deferred
    if deferred is not None:
        request_format = call.endpoint.request_format
        used = request_format.used if request_format is not None else None
        tokens = None if used is None else used(deferred[0], deferred[1])
    else:
        usage = call.usage
        if (usage is None or usage.input_tokens is None or usage.output_tokens is None
                or usage.input_audio_tokens or usage.output_audio_tokens):
            return None
        tokens = usage.input_tokens, usage.output_tokens
    return None if tokens is None else (*tokens, call.model or call.request_model, call.service_tier)


class MeterHooks:
    def __init__(self, config: MeterConfig, limits: LimitKeeper, pipeline: Pipeline, faults: Faults) -> None:
        self.settings = InstrumentSettings(stream_usage=config.stream_usage,
                                           provider_overrides=dict(config.provider_overrides))
        self.active = True
        self._default = Scope(config.default_tenant) if config.default_tenant is not None else None
        if self._default is None:
            # The ContextVar's own getter, not a method around it: this runs before every call.
            self.scope = _current_scope  # type: ignore[method-assign]
        self._limits = limits
        #: endpoint -> the request format the limits' table bounds its requests by (None for an
        #: endpoint with an estimate of its own): `admit` looks it up, see `_table_format`.
        self._formats: dict[Endpoint, RequestFormat | None] = {}
        self._pipeline = pipeline
        self._queue = pipeline.worker.submit
        self.fault = faults

    def scope(self) -> Scope | None:
        """The scope in force, or the default tenant's (`MeterConfig.default_tenant`)."""
        scope = _current_scope()
        return self._default if scope is None else scope

    def _request(self, call: Call, tenant: str) -> CallRequest:
        """The call as the limits' full check sees it."""
        return CallRequest(tenant, call.provider, call.request_model, call.request or {}, call.endpoint.estimate)

    def _table_format(self, endpoint: Endpoint) -> RequestFormat | None:
        """The request format by which the limits' table may bound `endpoint`'s requests: its
        format's, unless the endpoint estimates its requests itself (then None)."""
        request_format = endpoint.request_format if type(endpoint).estimate is _FORMAT_ESTIMATE else None
        if len(self._formats) >= 256:  # endpoints a provider makes anew at each patch_all: bounded
            self._formats.clear()
        self._formats[endpoint] = request_format
        return request_format

    def admit(self, call: Call) -> None:
        """A tenant known to have no limit, and a plain request of one with an ample lease, are
        decided by one look-up (`LimitKeeper.admit_plain`); the rest by the full check. Written
        out in `admit_async` too: this runs before every call, and a Python call costs here
        (the endpoint's format is looked up in `_formats`: two class attributes read and
        compared cost 0.15-0.2 µs more in place)."""
        scope = call.scope
        if scope is None or scope.tenant_id is None:
            return
        endpoint = call.endpoint
        try:
            request_format = self._formats[endpoint]
        except KeyError:
            request_format = self._table_format(endpoint)
        admit_plain = self._limits.admit_plain  # (the guard's bound method, on the instance: read as
        # an attribute, not called as a method, so that the interpreter specialises the read)
        ticket = admit_plain(scope.tenant_id, call.provider, call.request_model, call.request, request_format)
        if ticket is NEEDS_CHECK:
            ticket = self._limits.admit(self._request(call, scope.tenant_id))
        call.ticket = ticket

    async def admit_async(self, call: Call) -> None:
        scope = call.scope
        if scope is None or scope.tenant_id is None:
            return
        endpoint = call.endpoint
        try:
            request_format = self._formats[endpoint]
        except KeyError:
            request_format = self._table_format(endpoint)
        admit_plain = self._limits.admit_plain
        ticket = admit_plain(scope.tenant_id, call.provider, call.request_model, call.request, request_format)
        if ticket is NEEDS_CHECK:
            ticket = await self._limits.admit_async(self._request(call, scope.tenant_id))
        call.ticket = ticket

    def finished(self, call: Call) -> None:
        reservation = call.ticket
        urgent = False
        if reservation is not None:
            reservation.record = call  # `LimitKeeper.finished`, written out: this runs for every call
            if reservation.urgent:  # its lease is short: the finished calls cut to what they used
                # here, and settled now off this thread and the worker's (the worker, if that cannot be)
                urgent = not self._limits.settle_soon(reservation, used_tokens)
        # The worker's submit, straight: this runs for every call (read as an attribute, not
        # called as a method, so that the interpreter specialises the read).
        submit = self._queue
        if not submit(call, urgent):
            self._pipeline.refused(call)

    def abandoned(self, call: Call) -> None:
        if call.ticket is not None:
            self._limits.release(call.ticket)
            call.ticket = None
