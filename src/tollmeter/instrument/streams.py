"""Streams, raw responses and stream managers, observed in place.

The caller always gets the SDK's own object back (`type(result) is type(unpatched_result)`):

- An SDK stream object (openai/anthropic/groq `Stream`, mistral's `EventStream`, botocore's
  `EventStream`) keeps its chunk iterator in an attribute; an observed iterator is put there
  in its place (`observed_chunks`, a generator, for sync streams) and reads each chunk as it
  passes. Closing the stream (a class-level hook on its `close`, see `close_patches`) or
  dropping it ends the call; a loop over a Stainless stream gets an observed generator of its
  own (`passthrough_iter_patches`).
- A generator result (google-genai, cohere, `@meter.track`) is handed back as the same
  observed generator over it.
- A raw response (`with_raw_response`, `with_streaming_response`) gets its `parse` and
  `close` shadowed on that one object; those and its collection end the call.
- A stream manager whose request goes out on `__enter__` gets its request callable replaced
  (`start_on_enter`); a manager dropped unentered abandons the call.

The call is recorded exactly once: at the end of the stream, on `close()`, on an exception, or
when the observer is collected (a stream not read to its end is `partial`). The observer never
holds the stream object itself: it keeps no dropped stream alive. Some SDK stream objects are
in a reference cycle of their own, unpatched too (their chunk generator holds them: the
Stainless SDKs' `__stream__`, botocore's `_create_raw_event_generator`): a dropped one is freed,
and its call recorded, by the cyclic collector, on whichever thread that runs. Others (mistral's
`EventStream`, generator results) go, and are recorded, as the last reference goes.
The call's scope was captured when it started: no ContextVar is touched while chunks are read.
"""

from __future__ import annotations

import importlib
import inspect
import json
import weakref
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Callable

from .endpoint import ChunkReader, Kind

if TYPE_CHECKING:
    from .call import Call


def _show(chunk: Any) -> bool:
    return True


def _reader(call: Call, stream: Any) -> ChunkReader:
    """The endpoint's reader for this stream; the request id comes from the response headers."""
    try:
        header = call.endpoint.request_id_header
        if header and call.request_id is None:
            response = getattr(stream, "response", None)
            if response is not None:
                call.request_id = response.headers.get(header)
        return call.endpoint.stream_reader(call)
    except Exception as fault:
        call.hooks.fault(fault, f"starting to read a {call.endpoint.name} stream")
        return call.chunk_filter or _show


class _Observer:
    """What every observer shares: the call, the chunk reader, and ending the call once."""

    __slots__ = ("source", "call", "read", "seen", "__weakref__")

    def __init__(self, source: Any, call: Call, read: ChunkReader) -> None:
        self.source = source
        self.call = call
        self.read = read
        #: Whether a chunk arrived: a stream that fails before any is a failed call, not a
        #: partial stream.
        self.seen = False

    def failed(self, fault: Exception, chunk: Any) -> bool:
        """After its first fault the reader is set aside (reported once) and chunks flow on,
        through the call's chunk filter if it has one: what the caller iterates is never
        changed by a fault (a usage chunk tollmeter asked for stays hidden)."""
        call = self.call
        call.hooks.fault(fault, f"reading a {call.endpoint.name} stream chunk")
        self.read = call.chunk_filter or _show
        try:
            return self.read(chunk)
        except Exception:  # the filter is fault-proof; should it not be, the chunk is shown
            self.read = _show
            return True

    def ended(self) -> None:
        """Closed by the caller: whatever was read is the call's usage."""
        self.call.finish(partial=True)

    def __del__(self) -> None:
        try:
            call = self.call
        except AttributeError:
            return
        if not call.done:
            call.finish(partial=True)


class ChunkObserver(_Observer):
    """A sync stream's observer: what `observed_chunks` reads with, and what closing or
    collecting the stream ends (the chunks themselves pass through that generator)."""

    __slots__ = ()


def observed_chunks(observer: ChunkObserver, owns: bool = True) -> Any:
    """The observed chunk iterator: each chunk read as it passes. One generator for every sync
    stream, written out: resuming it is the only Python frame a chunk adds besides its reader
    (an iterator object's `__next__` would be one more, and this runs for every chunk).

    The one that stands in for the stream's own iterator (`owns`), once closed (by the caller,
    or collected while suspended), ends the call with what was read and closes the source. One
    made for a loop over the stream (`passthrough_iter_patches`) does neither: closing it leaves
    the stream as closing the SDK's own loop would. Never started and dropped: the observer's
    collection ends the call. `observer` is this generator's first local: `observer_in` finds
    it there."""
    source = observer.source
    call = observer.call
    read = observer.read
    seen = False
    while True:
        try:
            chunk = next(source)  # the builtin: cheaper than the method, once per chunk
        except StopIteration:
            call.finish()
            return
        except BaseException as exc:
            call.fail(exc, partial=observer.seen)
            raise
        if not seen:
            seen = observer.seen = True
        try:
            show = read(chunk)
        except Exception as fault:
            show = observer.failed(fault, chunk)
            read = observer.read
        if show:
            if not owns:
                yield chunk
                continue
            try:
                yield chunk
            except GeneratorExit:
                observer.ended()
                close = getattr(source, "close", None)
                if close is not None:
                    close()
                raise


class AsyncChunkObserver(_Observer):
    """An async chunk iterator standing in for the SDK's own."""

    __slots__ = ()

    def __aiter__(self) -> AsyncChunkObserver:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                chunk = await self.source.__anext__()
            except StopAsyncIteration:
                self.call.finish()
                raise
            except BaseException as exc:
                self.call.fail(exc, partial=self.seen)
                raise
            self.seen = True
            try:
                show = self.read(chunk)
            except Exception as fault:
                show = self.failed(fault, chunk)
            if show:
                return chunk


_OBSERVERS = (ChunkObserver, AsyncChunkObserver)


# -- SDK stream objects ----------------------------------------------------------------------


def observe_stream(stream: Any, call: Call, attribute: str | None = None, read: ChunkReader | None = None) -> Any:
    """Observe `stream` in place: its chunk iterator (in `attribute`, by default the endpoint's
    `stream_iterator`) is replaced by an observed one. Returns `stream`. Observing twice is a no-op.

    A sync iterator is replaced by the generator `observed_chunks` (what the SDK keeps there is
    a generator too); an async one by an `AsyncChunkObserver`, or, in a public attribute that
    holds an async generator, by an async generator over it, so that what the caller can reach
    keeps its type."""
    attribute = attribute or call.endpoint.stream_iterator
    source = getattr(stream, attribute)
    if observer_in(source) is not None:
        return stream
    if read is None:
        read = _reader(call, stream)
    if hasattr(source, "__anext__"):
        replacement: Any = AsyncChunkObserver(source, call, read)
        if inspect.isasyncgen(source) and not attribute.startswith("_"):
            observer = replacement
            replacement = _observed_async(observer)
            _in_generators[replacement] = observer
    else:
        replacement = observed_chunks(ChunkObserver(source, call, read))
    setattr(stream, attribute, replacement)
    return stream


#: generator handed out in a public attribute -> the observer inside it.
_in_generators: weakref.WeakKeyDictionary[Any, _Observer] = weakref.WeakKeyDictionary()


def observer_in(value: Any) -> _Observer | None:
    """The observer behind an observed stream's chunk iterator, or None (not observed, or its
    chunks are over)."""
    if type(value) in _OBSERVERS:
        return value
    if inspect.isgenerator(value):
        if value.gi_code is _OBSERVED_CHUNKS:
            frame = value.gi_frame  # None once it ended
            return None if frame is None else frame.f_locals.get("observer")
        return None
    if inspect.isasyncgen(value):
        return _in_generators.get(value)
    return None


_OBSERVED_CHUNKS = observed_chunks.__code__


def close_patches(module: str, owners: tuple[str, ...], attribute: str = "_iterator") -> list[Any]:
    """Hooks on the `close` of stream classes observed through `attribute`: closing an
    observed stream ends its call at once (the stream object may live on)."""
    from .registry import Patch

    def factory(hooks: Any) -> Callable[..., Any]:
        def on_close(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            values = getattr(instance, "__dict__", None)
            observer = observer_in(values.get(attribute)) if values is not None else None
            if observer is not None:
                observer.ended()
            return wrapped(*args, **kwargs)

        return on_close

    return [Patch(module, f"{owner}.close", wrapper=factory) for owner in owners]


def _passthrough_iter(self: Any) -> Any:  # what Stainless streams' `__iter__` is
    for item in self._iterator:
        yield item


def _is_passthrough(method: Any) -> bool:
    """Whether `method` is `_passthrough_iter`, compiled from the SDK's source: the same code
    and names (line numbers aside). Anything more (anthropic's `__iter__` feeds an observer of
    its own) is left alone."""
    code, template = getattr(method, "__code__", None), _passthrough_iter.__code__
    return (code is not None and code.co_code == template.co_code and code.co_names == template.co_names
            and code.co_varnames == template.co_varnames and code.co_consts == template.co_consts)


def passthrough_iter_patches(module: str, owner: str) -> list[Any]:
    """A hook on the `__iter__` of a sync stream class whose `__iter__` only yields what its
    `_iterator` yields (`_is_passthrough`; none otherwise): a loop over an observed stream gets
    an observed generator straight over the source (`observed_chunks(owns=False)`), in place of
    the SDK's generator over the observed one, so a chunk passes one generator, as unpatched,
    and the reader. It shares the observer (each chunk is read once, whichever way it is
    taken); what the loop yields, and what closing it does, are as unpatched."""
    from .registry import Patch

    stream_class = getattr(importlib.import_module(module), owner, None)
    if not _is_passthrough(getattr(stream_class, "__iter__", None)):
        return []

    def factory(hooks: Any) -> Callable[..., Any]:
        def on_iter(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            values = getattr(instance, "__dict__", None)
            iterator = values.get("_iterator") if values is not None else None
            # An observed generator not running, its chunks not over (else the SDK's own loop)
            if type(iterator) is GeneratorType and not iterator.gi_running and not args and not kwargs:
                observer = observer_in(iterator)
                if observer is not None:
                    return observed_chunks(observer, owns=False)  # type: ignore[arg-type]
            return wrapped(*args, **kwargs)

        return on_iter

    return [Patch(module, f"{owner}.__iter__", wrapper=factory)]


# -- generators ------------------------------------------------------------------------------


def observe_generator(generator: Any, call: Call) -> Any:
    """A generator over the same chunks (the caller gets a generator, as unpatched)."""
    return observed_chunks(ChunkObserver(generator, call, _reader(call, generator)))


def observe_async_generator(generator: Any, call: Call) -> Any:
    """An async generator over the same chunks."""
    return _observed_async(AsyncChunkObserver(generator, call, _reader(call, generator)))


async def _observed_async(observer: AsyncChunkObserver) -> Any:
    try:
        async for chunk in observer:
            yield chunk
    except GeneratorExit:
        observer.ended()
        aclose = getattr(observer.source, "aclose", None)
        if aclose is not None:
            await aclose()
        raise


# -- raw responses ---------------------------------------------------------------------------


class _RawState:
    __slots__ = ("call", "parsed")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.parsed = False


def observe_raw_response(raw: Any, call: Call) -> Any:
    """`with_raw_response` / `with_streaming_response` results, returned as they are.

    A plain (non-stream) response whose body is already read is parsed now (the SDK caches the
    parse, so the caller's own `parse()` gets the same object). Otherwise the response's own
    `parse` and `close` are shadowed on this one object (`_RawHooks`; its class is untouched,
    so the SDK's every other response pays nothing) and its collection records the call.
    """
    if not call.stream and _body_is_read(raw):
        parse = getattr(raw, "parse", None)
        parsed = parse() if parse is not None else None
        if not inspect.isawaitable(parsed):
            call.finish(response=parsed)
            return raw
        parsed.close()  # an async parse of a read body: not run here
    state = _RawState(call)
    hooks = _RawHooks(weakref.ref(raw), state)
    raw.parse = hooks.parse
    if callable(getattr(type(raw), "close", None)):
        raw.close = hooks.close
    weakref.finalize(raw, _finish_unparsed, state, getattr(raw, "http_response", None))
    return raw


def _body_is_read(raw: Any) -> bool:
    http = getattr(raw, "http_response", None)
    return bool(getattr(http, "is_stream_consumed", False))


class _RawHooks:
    """`parse` and `close` of one observed raw response: its class's own methods, then the
    call's bookkeeping. Holds the response weakly (it lives in the response's __dict__)."""

    __slots__ = ("raw", "state")

    def __init__(self, raw: weakref.ref, state: _RawState) -> None:
        self.raw = raw
        self.state = state

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        raw = self.raw()
        parsed = type(raw).parse(raw, *args, **kwargs)
        if inspect.isawaitable(parsed):
            return _parsed_async(self.state, parsed)
        return _took(self.state, parsed)

    def close(self, *args: Any, **kwargs: Any) -> Any:
        raw = self.raw()
        http = getattr(raw, "http_response", None)
        try:
            result = type(raw).close(raw, *args, **kwargs)
        except BaseException:
            _finish_unparsed(self.state, http)
            raise
        if inspect.isawaitable(result):
            return _closed_async(self.state, result, http)
        _finish_unparsed(self.state, http)
        return result


async def _parsed_async(state: _RawState, awaitable: Any) -> Any:
    return _took(state, await awaitable)


async def _closed_async(state: _RawState, awaitable: Any, http: Any) -> Any:
    try:
        return await awaitable
    finally:
        _finish_unparsed(state, http)


def _took(state: _RawState, parsed: Any) -> Any:
    """The caller parsed an observed raw response: the call's response, or its stream."""
    call = state.call
    try:
        if not call.stream:
            call.finish(response=parsed)
            return parsed
        if call.endpoint.classify(parsed) is Kind.STREAM:
            state.parsed = True
            observe_stream(parsed, call)  # the SDK caches the parse: observed once
    except Exception as fault:
        call.hooks.fault(fault, f"reading a raw {call.endpoint.name} response")
        call.finish()
    return parsed


def _finish_unparsed(state: _RawState, http: Any) -> None:
    """Closed or dropped without `parse()`: read what the caller read, if anything."""
    call = state.call
    if call.done or state.parsed:
        return
    try:
        if (not call.stream and http is not None and getattr(http, "is_stream_consumed", False)
                and "json" in http.headers.get("content-type", "")):
            call.finish(response=json.loads(http.content))
            return
    except Exception:  # not JSON, or not readable: record what is known
        pass
    call.finish(partial=call.stream)


# -- stream managers -------------------------------------------------------------------------

#: Observes what a manager's request returned; returns what the manager should get.
Instrument = Callable[["Call", Any], Any]


class _Entering:
    """Stands in for a manager's request: the call starts when the manager is entered."""

    __slots__ = ("call", "request", "instrument", "started")

    def __init__(self, call: Call, request: Any, instrument: Instrument) -> None:
        self.call = call
        self.request = request
        self.instrument = instrument
        self.started = False

    def _start(self) -> None:
        self.started = True
        self.call.restart_clock()

    def _observe(self, result: Any) -> Any:
        try:
            return self.instrument(self.call, result)
        except Exception as fault:
            self.call.hooks.fault(fault, f"instrumenting a {self.call.endpoint.name} stream")
            self.call.finish()
            return result

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # a sync manager's request callable
        self._start()
        try:
            result = self.request(*args, **kwargs)
        except BaseException as exc:
            self.call.fail(exc)
            raise
        return self._observe(result)

    def __await__(self) -> Any:  # an async manager's request coroutine
        self._start()
        try:
            result = yield from self.request.__await__()
        except BaseException as exc:
            self.call.fail(exc)
            raise
        return self._observe(result)


def start_on_enter(call: Call, manager: Any, attribute: str, instrument: Instrument) -> Any:
    """Observe a manager whose request is sent on `__enter__` / `__aenter__`, in place: the
    request it keeps in `attribute` (a callable, or an awaitable for async managers) is
    replaced so that the call's clock starts when it runs and `instrument` observes its
    result. A manager collected without being entered abandons the call. Returns `manager`."""
    entering = _Entering(call, getattr(manager, attribute), instrument)
    setattr(manager, attribute, entering)
    weakref.finalize(manager, _dropped_manager, entering)
    return manager


def _dropped_manager(entering: _Entering) -> None:
    if not entering.started:
        entering.call.abandon()


def start_on_enter_generator(call: Call, manager: Any, instrument: Instrument) -> Any:
    """`start_on_enter` for a `contextlib` (async) generator context manager: its generator is
    replaced by one that starts the call and observes what it yields."""
    entering = _Entering(call, None, instrument)
    if hasattr(manager.gen, "__anext__"):
        manager.gen = _entering_async(entering, manager.gen)
    else:
        manager.gen = _entering_sync(entering, manager.gen)
    weakref.finalize(manager, _dropped_manager, entering)
    return manager


def _entering_sync(entering: _Entering, generator: Any) -> Any:
    entering._start()
    try:
        first = next(generator)
    except StopIteration:
        return
    except BaseException as exc:
        entering.call.fail(exc)
        raise
    try:
        yield entering._observe(first)
    except GeneratorExit:
        _left(entering)
        generator.close()
        raise
    except BaseException as exc:  # thrown in by __exit__: the original decides
        _left(entering)
        try:
            again = generator.throw(exc)
        except StopIteration:
            return
        yield again  # the original yielded again: contextlib reports it, as unpatched
    _left(entering)
    yield from generator  # the manager's exit: next() reaches the original


def _left(entering: _Entering) -> None:
    """The manager's block was left: whatever its stream delivered is the call."""
    entering.call.finish(partial=True)


async def _entering_async(entering: _Entering, generator: Any) -> Any:
    entering._start()
    try:
        first = await generator.__anext__()
    except StopAsyncIteration:
        return
    except BaseException as exc:
        entering.call.fail(exc)
        raise
    try:
        yield entering._observe(first)
    except GeneratorExit:
        _left(entering)
        await generator.aclose()
        raise
    except BaseException as exc:  # thrown in by __aexit__: the original decides
        _left(entering)
        try:
            again = await generator.athrow(exc)
        except StopAsyncIteration:
            return
        yield again  # the original yielded again: contextlib reports it, as unpatched
    _left(entering)
    try:
        again = await generator.__anext__()
    except StopAsyncIteration:
        return
    yield again
