"""A real ingest server for the server tests (their fixtures are in server_harness.py):
`python -m tollmeter.server serve` in a subprocess on 127.0.0.1, over SQLite (a file) or
PostgreSQL (`TOLLMETER_TEST_POSTGRES`, a DSN; `.ci/run` starts a server and sets it), with
httpx as the client.

One server per database per test process, started on first use and stopped at exit; every test
works in projects of its own (`api.project()`), so tests never see each other's data. On
PostgreSQL the server works in a schema of its own (search_path), dropped at the end.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tollmeter.server.auth import create_key
from tollmeter.server.state import open_store

POSTGRES_ENV = "TOLLMETER_TEST_POSTGRES"
BACKENDS = ("sqlite", "postgres")

#: Prices of the test models (USD per million tokens): the server's rate card.
RATE_CARD = {"models": [{"model": "tm-test-model", "provider": "acme-ai", "input_mtok": 2, "output_mtok": 8}]}
#: A rate card that also knows a model the server's does not (for `tollmeter reprice`).
LATER_RATE_CARD = {"models": [*RATE_CARD["models"],
                              {"model": "tm-later-model", "provider": "acme-ai", "input_mtok": 1, "output_mtok": 4}]}

_WORK = Path(tempfile.mkdtemp(prefix="tollmeter-server-tests-"))


def write_card(name: str, card: dict) -> str:
    path = _WORK / name
    path.write_text(json.dumps(card))
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_url(dsn: str, schema: str) -> str:
    """The DSN with its own search_path (so each test run has a schema of its own)."""
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


def database_for(backend: str) -> tuple[str, Any]:
    """A fresh database URL for `backend`, and a function that drops it."""
    if backend == "sqlite":
        path = _WORK / f"server-{uuid.uuid4().hex[:8]}.db"
        return str(path), lambda: None
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL to test against (.ci/run starts one and sets it)")
    from sqlalchemy import create_engine, text

    schema = f"tm_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(dsn.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()

    return postgres_url(dsn, schema), drop


@dataclass
class Server:
    backend: str
    url: str  # the database
    base: str  # http://127.0.0.1:port
    process: subprocess.Popen
    log: Path
    cleanup: list = field(default_factory=list)
    _store: Any = None

    @property
    def store(self):
        """The server's database, opened in the test process (for keys and checks)."""
        if self._store is None:
            self._store = open_store(self.url)
        return self._store

    def key(self, project: str) -> str:
        return create_key(self.store, project)[1]

    def client(self, key: str | None = None, headers: dict | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else dict(headers or {})
        return httpx.Client(base_url=self.base, headers=headers, timeout=30)

    def project(self, prefix: str = "p") -> Api:
        """A new project with a key: its API client."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        key = self.key(name)
        return Api(self, name, key, self.client(key))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self._store is not None:
            self._store.close()
        for fn in self.cleanup:
            fn()


@dataclass
class Api:
    server: Server
    project: str
    key: str
    http: httpx.Client

    def ingest(self, events: list[dict], *, gzip: bool = True) -> httpx.Response:
        body = json.dumps({"events": events}).encode()
        headers = {"Content-Type": "application/json"}
        if gzip:
            import gzip as gz

            body = gz.compress(body)
            headers["Content-Encoding"] = "gzip"
        return self.http.post("/v1/ingest", content=body, headers=headers)

    def usage(self, **params: Any) -> list[dict]:
        response = self.http.get("/v1/usage", params=params)
        assert response.status_code == 200, response.text
        return response.json()["rows"]

    def spend(self, tenant: str) -> dict:
        response = self.http.get(f"/v1/tenants/{tenant}/spend")
        assert response.status_code == 200, response.text
        return response.json()

    def count(self) -> int:
        return self.server.store.for_project(self.project).count_events()


def launch_server(backend: str, *extra: str, prices: dict | None = RATE_CARD) -> Server:
    """Start a server process (see `wait_ready`)."""
    url, drop = database_for(backend)
    port = free_port()
    log = _WORK / f"server-{backend}-{port}.log"
    args = [sys.executable, "-m", "tollmeter.server", "serve", "--database-url", url, "--port", str(port),
            "--log-level", "warning", "--no-access-log", *extra]
    if prices is not None:
        args += ["--prices", write_card(f"prices-{port}.json", prices)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLMETER_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Server(backend, url, f"http://127.0.0.1:{port}", process, log, [drop])


def wait_ready(server: Server, timeout: float = 90) -> Server:
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            server.stop()
            raise RuntimeError(f"the server exited ({server.process.returncode}):\n{server.log.read_text()}")
        try:
            if httpx.get(server.base + "/healthz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"the server did not start in {timeout:.0f} s:\n{server.log.read_text()}")
        time.sleep(0.05)


def start_server(backend: str, *extra: str, prices: dict | None = RATE_CARD) -> Server:
    return wait_ready(launch_server(backend, *extra, prices=prices))


_servers: dict[str, Server] = {}


def running_server(backend: str) -> Server:
    """The shared server of `backend`, started on first use (with the other backend's, at the
    same time: starting is mostly imports)."""
    if backend not in _servers:
        wanted = [b for b in BACKENDS if b not in _servers and (b == backend or _available(b))]
        launched = [launch_server(b) for b in wanted]
        for server in launched:
            _servers[server.backend] = server
        for server in launched:
            try:
                wait_ready(server)
            except RuntimeError:
                del _servers[server.backend]
                raise
    return _servers[backend]


def _available(backend: str) -> bool:
    return backend == "sqlite" or bool(os.environ.get(POSTGRES_ENV))


@atexit.register
def _stop_all() -> None:
    for server in _servers.values():
        server.stop()
    shutil.rmtree(_WORK, ignore_errors=True)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def event(**fields: Any) -> dict:
    """A wire event (as LLMEvent.to_dict() makes it), priced by the server's rate card."""
    out = {
        "schema_version": 1, "event_id": str(uuid.uuid4()), "timestamp": now_iso(), "tenant_id": "acme",
        "run_id": None, "agent_id": None, "tags": {}, "provider": "acme-ai", "model": "tm-test-model",
        "request_model": "tm-test-model", "endpoint": "chat.completions", "stream": False,
        "usage": {"input_tokens": 1000, "output_tokens": 100}, "tool_calls": None, "web_search_requests": None,
        "service_tier": None, "finish_reason": "stop", "duration_ms": 812.5, "time_to_first_token_ms": None,
        "request_id": "req_1", "error": None, "status_code": None, "partial": False, "cost_usd": None,
        "priced": False, "price_source": None, "price_model": None, "provider_cost_usd": None,
        "computed_cost_usd": None, "units": None,
    }
    out.update(fields)
    return out


#: What `event()` costs at the server's rate card: 1,000 x $2 + 100 x $8, per million.
EVENT_COST = "0.0028"
