"""The server tests' fixtures, a pytest plugin (`pytest_plugins = ["tests.server_harness"]`):
`backend` (sqlite, postgres), `server` (the running server of that backend) and `api` (a new
project on it, with its key and client). The machinery is in server_support.py."""

from __future__ import annotations

import os

import pytest

from .server_support import BACKENDS, POSTGRES_ENV, Api, Server, running_server


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgres" and not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"{POSTGRES_ENV} is not set: no PostgreSQL to test against (.ci/run starts one and sets it)")
    return request.param


@pytest.fixture
def server(backend) -> Server:
    return running_server(backend)


@pytest.fixture
def api(server) -> Api:
    project = server.project()
    yield project
    project.http.close()
