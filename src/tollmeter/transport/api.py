"""ServerApi: the agent's client of the server's JSON API (limits, leases, customers, margin),
beside the ingest batches of `HttpSink`. One httpx client per thread and per process (httpx
clients are not fork-safe: a child opens its own), Bearer key, the tollmeter User-Agent."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from .._version import __version__


def server_base(ingest_url: str) -> str:
    """`https://m.example.com/v1/ingest` -> `https://m.example.com`."""
    if ingest_url.rstrip("/").endswith("/v1/ingest"):
        return ingest_url.rstrip("/")[: -len("/v1/ingest")]
    parts = urlsplit(ingest_url)
    return f"{parts.scheme}://{parts.netloc}"


def segment(value: str) -> str:
    """A path segment (a tenant or run id) as it goes in a URL."""
    return quote(value, safe="")


class ServerApi:
    def __init__(self, ingest_url: str, api_key: str, *, timeout: float,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base = server_base(ingest_url)
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": f"tollmeter/{__version__}"}
        self._timeout = timeout
        self._transport = transport
        self._local = threading.local()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request (httpx errors are the caller's to map)."""
        return self._client().request(method, self.base + path, **kwargs)

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None or self._local.pid != os.getpid():
            client = self._local.client = httpx.Client(timeout=self._timeout, transport=self._transport,
                                                       headers=self._headers)
            self._local.pid = os.getpid()
        return client

    def close(self) -> None:
        """Close this thread's client (other threads' close when they are collected)."""
        client = getattr(self._local, "client", None)
        if client is not None and self._local.pid == os.getpid():
            client.close()
        self._local.client = None

    def after_fork(self) -> None:
        self._local = threading.local()  # never use the parent's connections
