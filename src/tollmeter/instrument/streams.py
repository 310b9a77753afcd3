"""Proxies that stand in for what an SDK returns until the call's usage is known.

Each proxy is a `wrapt.ObjectProxy`: `isinstance`, attributes, `repr` and everything the
proxy does not define go to the real object. A stream proxy reads each chunk as it passes and
records the call exactly once: at the end of the stream, on `break` + `close()`, on leaving a
`with` block, on an exception, or when it is garbage collected. A stream not read to its end is
recorded as `partial`. The call's scope was captured when it started, so no ContextVar is touched
while chunks are yielded.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import wrapt

from .call import Call
from .endpoint import ChunkReader, Kind


def _start_reading(call: Call, stream: Any) -> ChunkReader:
    """The endpoint's reader for this stream; the request id comes from the response headers."""
    try:
        header = call.endpoint.request_id_header
        if header and call.request_id is None:
            response = getattr(stream, "response", None)
            if response is not None:
                call.request_id = response.headers.get(header)
        return call.endpoint.stream_reader(call)
    except Exception as fault:
        call.meter._fault(fault, f"starting to read a {call.endpoint.name} stream")
        return _show


def _show(chunk: Any) -> bool:
    return True


class _Reader:
    """A stream's chunk reader, held by the proxy and by every iterator over it.

    When the last of them is gone and the call is not recorded yet, the stream was dropped
    before its end: it is recorded as partial then. After its first fault the reader is
    replaced by `_show` (the fault is reported once) and chunks flow on.
    """

    __slots__ = ("call", "read", "seen")

    def __init__(self, call: Call, read: ChunkReader) -> None:
        self.call = call
        self.read = read
        #: Whether a chunk arrived: a stream that fails before any is a failed call, not a
        #: partial stream.
        self.seen = False

    def failed(self, fault: Exception) -> bool:
        self.call.meter._fault(fault, f"reading a {self.call.endpoint.name} stream chunk")
        self.read = _show
        return True

    def __del__(self) -> None:
        call = self.call
        if not call.done:
            call.finish(partial=True)


def _iterate(reader: _Reader, chunks: Any) -> Any:
    """The chunks the caller sees. A generator: resuming it costs less than a method call."""
    call = reader.call
    try:
        for chunk in chunks:
            reader.seen = True
            try:
                show = reader.read(chunk)
            except Exception as fault:
                show = reader.failed(fault)
            if show:
                yield chunk
    except GeneratorExit:  # the caller stopped iterating; close() or collection records it
        raise
    except BaseException as exc:
        call.fail(exc, partial=reader.seen)
        raise
    call.finish()


class StreamProxy(wrapt.ObjectProxy):
    def __init__(self, stream: Any, call: Call) -> None:
        super().__init__(stream)
        self._self_call = call
        self._self_reader = _Reader(call, _start_reading(call, stream))
        self._self_iterator: Any = None

    def __iter__(self) -> Any:
        return _iterate(self._self_reader, iter(self.__wrapped__))

    def __next__(self) -> Any:
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = iter(self)
        return next(iterator)

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_call.finish(partial=True)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.finish(partial=True)


class AsyncStreamProxy(wrapt.ObjectProxy):
    def __init__(self, stream: Any, call: Call) -> None:
        super().__init__(stream)
        self._self_call = call
        self._self_reader = _Reader(call, _start_reading(call, stream))
        self._self_anext = getattr(stream, "__anext__", None) or stream.__aiter__().__anext__

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                chunk = await self._self_anext()
            except StopAsyncIteration:
                self._self_call.finish()
                raise
            except BaseException as exc:
                self._self_call.fail(exc, partial=self._self_reader.seen)
                raise
            reader = self._self_reader
            reader.seen = True
            try:
                show = reader.read(chunk)
            except Exception as fault:
                show = reader.failed(fault)
            if show:
                return chunk

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_call.finish(partial=True)

    def close(self) -> Any:
        return self._tollmeter_closing(self.__wrapped__.close)

    def aclose(self) -> Any:
        return self._tollmeter_closing(self.__wrapped__.aclose)

    def _tollmeter_closing(self, close: Any) -> Any:
        try:
            result = close()
        except BaseException:
            self._self_call.finish(partial=True)
            raise
        if inspect.isawaitable(result):
            return self._tollmeter_await_close(result)
        self._self_call.finish(partial=True)
        return result

    async def _tollmeter_await_close(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self._self_call.finish(partial=True)


# -- raw responses ---------------------------------------------------------------------------


def wrap_raw_response(raw: Any, call: Call) -> Any:
    """`with_raw_response` / `with_streaming_response` results.

    A plain (non-stream) response whose body is already read is parsed now (the SDK caches the
    parse, so the caller's own `parse()` gets the same object) and returned untouched. Anything
    else is proxied so that `parse()`, `close()` or garbage collection records the call.
    """
    if not call.stream and _body_is_read(raw):
        parse = getattr(raw, "parse", None)
        parsed = parse() if parse is not None else None
        if not inspect.isawaitable(parsed):
            call.finish(response=parsed)
            return raw
        parsed.close()  # an async parse of a read body: don't run it here
    return RawResponseProxy(raw, call)


def _body_is_read(raw: Any) -> bool:
    http = getattr(raw, "http_response", None)
    return bool(getattr(http, "is_stream_consumed", False))


class RawResponseProxy(wrapt.ObjectProxy):
    def __init__(self, raw: Any, call: Call) -> None:
        super().__init__(raw)
        self._self_call = call
        self._self_streams: dict[int, Any] = {}

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(parsed):
            return self._tollmeter_parse_async(parsed)
        return self._tollmeter_take(parsed)

    async def _tollmeter_parse_async(self, awaitable: Any) -> Any:
        return self._tollmeter_take(await awaitable)

    def _tollmeter_take(self, parsed: Any) -> Any:
        call = self._self_call
        try:
            if not call.stream:
                call.finish(response=parsed)
                return parsed
            # A stream: the SDK caches its parse, so hand out the same proxy every time.
            proxy = self._self_streams.get(id(parsed))
            if proxy is None:
                kind = call.endpoint.classify(parsed)
                if kind is Kind.STREAM:
                    proxy = StreamProxy(parsed, call)
                elif kind is Kind.ASYNC_STREAM:
                    proxy = AsyncStreamProxy(parsed, call)
                else:
                    return parsed
                self._self_streams[id(parsed)] = proxy
            return proxy
        except Exception as fault:
            call.meter._fault(fault, f"reading a raw {call.endpoint.name} response")
            call.finish()
            return parsed

    def close(self) -> Any:
        try:
            result = self.__wrapped__.close()
        except BaseException:
            self._tollmeter_finish_unparsed()
            raise
        if inspect.isawaitable(result):
            return self._tollmeter_await_close(result)
        self._tollmeter_finish_unparsed()
        return result

    async def _tollmeter_await_close(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        finally:
            self._tollmeter_finish_unparsed()

    def _tollmeter_finish_unparsed(self) -> None:
        """Closed or dropped without `parse()`: read what the caller read, if anything."""
        call = self._self_call
        if call.done or self._self_streams:
            return
        try:
            http = self.__wrapped__.http_response
            if (not call.stream and getattr(http, "is_stream_consumed", False)
                    and "json" in http.headers.get("content-type", "")):
                call.finish(response=json.loads(http.content))
                return
        except Exception:  # not JSON, or not readable: record what is known
            pass
        call.finish(partial=call.stream)

    def __del__(self) -> None:
        try:
            self._self_call  # noqa: B018
        except AttributeError:
            return
        self._tollmeter_finish_unparsed()


# -- stream managers -------------------------------------------------------------------------


class ManagerProxy(wrapt.ObjectProxy):
    """A stream manager (`with client.messages.stream(...) as stream`) whose request starts on enter."""

    def __init__(self, manager: Any, call: Call) -> None:
        super().__init__(manager)
        self._self_call = call
        self._self_entered = False

    def __enter__(self) -> Any:
        call = self._self_call
        call.restart_clock()
        self._self_entered = True
        try:
            entered = self.__wrapped__.__enter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        return _instrument_entered(call, entered)

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_call.finish(partial=True)

    def __del__(self) -> None:
        try:
            call, entered = self._self_call, self._self_entered
        except AttributeError:
            return
        if not entered:
            call.abandon()
        elif not call.done:
            call.finish(partial=True)


class AsyncManagerProxy(wrapt.ObjectProxy):
    def __init__(self, manager: Any, call: Call) -> None:
        super().__init__(manager)
        self._self_call = call
        self._self_entered = False

    async def __aenter__(self) -> Any:
        call = self._self_call
        call.restart_clock()
        self._self_entered = True
        try:
            entered = await self.__wrapped__.__aenter__()
        except BaseException as exc:
            call.fail(exc)
            raise
        return _instrument_entered(call, entered)

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_call.finish(partial=True)

    __del__ = ManagerProxy.__del__


def _instrument_entered(call: Call, entered: Any) -> Any:
    try:
        return call.endpoint.enter_manager(call, entered)
    except Exception as fault:
        call.meter._fault(fault, f"instrumenting a {call.endpoint.name} stream")
        return entered
