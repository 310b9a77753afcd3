"""A request body read within limits: at most `max_body_bytes` as sent (refused as soon as the
Content-Length or the bytes received pass it), and at most `max_decompressed_bytes` once
gunzipped. Decompression is a stream (`zlib.decompressobj` with `max_length`), so a gzip bomb is
refused after the limit's worth of output, never inflated whole into memory.

JSON is read strictly (RFC 8259): Python's reader takes `NaN` and `Infinity`, which JSON does not
have; the server refuses them in every body (`parse_json` for the ingest body, `StrictJSONRoute`
for the bodies FastAPI reads, which also refuses a number too large for a float, like `1e999`:
an ingest batch refuses the event that has one instead, not the batch)."""

from __future__ import annotations

import json
import math
import zlib
from typing import Any, AsyncIterator, Callable, Coroutine

import msgspec
from fastapi import Request, Response
from fastapi.routing import APIRoute


class PayloadError(Exception):
    """A body the server will not take; `status` is its HTTP status."""

    status = 400


class PayloadTooLarge(PayloadError):
    status = 413


class UnsupportedEncoding(PayloadError):
    status = 415


ENCODINGS = ("gzip", "identity")


def content_encoding(header: str | None) -> str:
    value = (header or "identity").strip().lower() or "identity"
    if value == "x-gzip":
        value = "gzip"
    if value not in ENCODINGS:
        raise UnsupportedEncoding(f"Content-Encoding {header!r} is not supported: send gzip or nothing")
    return value


async def read_limited(chunks: AsyncIterator[bytes], limit: int, declared_length: str | None = None) -> bytes:
    """The whole body, or PayloadTooLarge as soon as it passes `limit` bytes."""
    if declared_length is not None:
        try:
            declared = int(declared_length)
        except ValueError:
            raise PayloadError("invalid Content-Length") from None
        if declared > limit:
            raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress gzip data (several members allowed), refusing output beyond `limit` bytes
    without producing it."""
    out = bytearray()
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = data
        try:
            while pending and not inflater.eof:
                # max_length: never more than one byte past what is still allowed.
                out += inflater.decompress(pending, limit - len(out) + 1)
                if len(out) > limit:
                    raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
                pending = inflater.unconsumed_tail
        except zlib.error as exc:
            raise PayloadError(f"invalid gzip data: {exc}") from None
        if not inflater.eof:
            raise PayloadError("invalid gzip data: truncated")
        data = inflater.unused_data
        if not data.strip(b"\0"):  # padding after the last member
            break
    return bytes(out)


def decode(body: bytes, encoding: str, max_decompressed: int) -> bytes:
    if encoding == "gzip":
        return gunzip_limited(body, max_decompressed)
    if len(body) > max_decompressed:
        raise PayloadTooLarge(f"request body is over the limit of {max_decompressed} bytes")
    return body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:32]} is too large for a JSON number")
    return number


class StrictJSONRequest(Request):
    """A request whose JSON body is read strictly: FastAPI answers 422 to NaN, Infinity or 1e999."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = json.loads(body, parse_constant=_no_constant, parse_float=_finite_float)
            except json.JSONDecodeError:
                raise
            except ValueError as exc:  # NaN, Infinity, 1e999 (or not UTF-8)
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """The server's routes: their JSON bodies read strictly (`APIRouter(route_class=...)`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


_FAST = msgspec.json.Decoder()


def parse_json(data: bytes) -> Any:
    """The body's JSON. msgspec reads it (1.7 µs per event of a batch against 3.8 for the
    standard library's reader; orjson is as fast but reads integers past 64 bits as floats);
    what msgspec refuses (NaN, 1e999, an unpaired surrogate escape, invalid JSON) is read again
    by the standard library's reader, so that the answer is the same as ever: 400 for NaN or
    invalid JSON, and the one event with 1e999 or a surrogate refused with its reason."""
    try:
        return _FAST.decode(data)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise PayloadError("the body is not UTF-8") from None
    except RecursionError:
        raise PayloadError("the JSON is nested too deeply") from None
    except ValueError as exc:
        raise PayloadError(f"invalid JSON: {exc}") from None
