"""Tenant scopes: who a call is made for, carried in a ContextVar.

A scope is isolated per thread and per asyncio task (each task runs in a copy of the context
it was created in). Threads started with `threading.Thread` or `executor.submit` do not inherit
the context; wrap the function with `carry_scope(fn)` (or use `asyncio.to_thread`, which copies
the context itself).
"""

from __future__ import annotations

import functools
import inspect
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, TypeVar

from .rules import MAX_TAGS, check_id, check_tags

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY_TAGS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Scope:
    """The attribution of a call: tenant, and optionally the run and agent inside it."""

    tenant_id: str | None
    run_id: str | None = None
    agent_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY_TAGS)

    def within(self, outer: Scope | None) -> Scope:
        """This scope entered inside `outer`.

        A scope for another tenant replaces the outer one. A scope for the same tenant refines
        it: run and agent ids it does not set are inherited, and tags are merged over the outer
        ones.
        """
        if outer is None or outer.tenant_id != self.tenant_id:
            return self
        if outer.tags and self.tags:
            tags: Mapping[str, str] = MappingProxyType({**outer.tags, **self.tags})
            if len(tags) > MAX_TAGS:
                raise ValueError(f"tags: at most {MAX_TAGS} tags, {len(tags)} with the enclosing scope's")
        else:
            tags = self.tags or outer.tags
        return Scope(
            self.tenant_id,
            self.run_id if self.run_id is not None else outer.run_id,
            self.agent_id if self.agent_id is not None else outer.agent_id,
            tags,
        )


_current: ContextVar[Scope | None] = ContextVar("tollmeter_scope", default=None)


def current_scope() -> Scope | None:
    """The scope in force in this thread or task, or `None` outside any scope."""
    return _current.get()


def scope_getter() -> Callable[[], Scope | None]:
    """`current_scope` as the ContextVar's own bound `get`: no Python frame, for the hot path."""
    return _current.get


def make_scope(
    tenant_id: str | None,
    run_id: str | None = None,
    agent_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Scope:
    """A scope checked by the rules the server holds events to (rules.py): ids are None or
    non-empty strings of at most 255 characters without NUL or unpaired surrogates; tags at
    most 64, not named like content. A `TypeError` or `ValueError` here, never a lost batch later."""
    if tenant_id is not None:
        check_id(tenant_id, "tenant_id")
    if run_id is not None:
        check_id(run_id, "run_id")
    if agent_id is not None:
        check_id(agent_id, "agent_id")
    frozen: Mapping[str, str] = MappingProxyType(check_tags(tags)) if tags else _EMPTY_TAGS
    if not frozen and tags is not None and not isinstance(tags, Mapping):
        raise TypeError(f"tags must be a mapping, not {type(tags).__name__}")
    return Scope(tenant_id, run_id, agent_id, frozen)


def enter_scope(scope: Scope) -> Token:
    """Make `scope` current (refining the current one, see `Scope.within`); returns the reset token."""
    return _current.set(scope.within(_current.get()))


def exit_scope(token: Token) -> None:
    _current.reset(token)


class TenantScope:
    """What `Meter.for_tenant` returns: a sync and async context manager, and a decorator.

    As a context manager, one `TenantScope` object belongs to one thread or task at a time;
    as a decorator it is safe for concurrent calls (each call enters the scope on its own).
    """

    __slots__ = ("scope", "_tokens")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._tokens: list[Token] = []

    def __enter__(self) -> Scope:
        token = enter_scope(self.scope)
        self._tokens.append(token)
        return token.var.get()  # type: ignore[return-value]

    def __exit__(self, *exc_info: object) -> None:
        exit_scope(self._tokens.pop())

    async def __aenter__(self) -> Scope:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()

    def __call__(self, fn: F) -> F:
        scope = self.scope
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                token = enter_scope(scope)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    exit_scope(token)

            return run_async  # type: ignore[return-value]
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            raise TypeError(
                "for_tenant() cannot decorate a generator: a scope set across a yield would leak "
                "into the consumer. Enter the scope inside the generator body instead."
            )

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            token = enter_scope(scope)
            try:
                return fn(*args, **kwargs)
            finally:
                exit_scope(token)

        return run  # type: ignore[return-value]

    def __repr__(self) -> str:
        return f"TenantScope({self.scope!r})"


def carry_scope(fn: F) -> F:
    """Bind the current scope to `fn`, for running it in another thread or an executor.

    >>> with meter.for_tenant("acme"):
    ...     executor.submit(carry_scope(work), item)   # `work` runs for "acme"
    """
    scope = _current.get()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        token = _current.set(scope)
        try:
            return fn(*args, **kwargs)
        finally:
            _current.reset(token)

    return run  # type: ignore[return-value]
