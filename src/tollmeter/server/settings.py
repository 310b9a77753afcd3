"""ServerSettings: what `tollmeter serve` takes as flags, or a server process from the
environment (`TOLLMETER_*`), so that every worker and replica is configured alike."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Mapping

MiB = 1024 * 1024

#: Environment variable of each setting.
ENVIRONMENT = {
    "database_url": "TOLLMETER_DATABASE_URL",
    "prices": "TOLLMETER_PRICES",
    "max_body_bytes": "TOLLMETER_MAX_BODY_BYTES",
    "max_decompressed_bytes": "TOLLMETER_MAX_DECOMPRESSED_BYTES",
    "max_batch_events": "TOLLMETER_MAX_BATCH_EVENTS",
    "max_lease_ttl": "TOLLMETER_MAX_LEASE_TTL",
    "lease_concurrency": "TOLLMETER_LEASE_CONCURRENCY",
    "migrate": "TOLLMETER_MIGRATE",
    "metrics_token": "TOLLMETER_METRICS_TOKEN",
    "infer_prices": "TOLLMETER_INFER_PRICES",
    "freeze_heap": "TOLLMETER_FREEZE_HEAP",
    "warm_reports": "TOLLMETER_WARM_REPORTS",
}


@dataclass(frozen=True)
class ServerSettings:
    #: A SQLAlchemy URL, `postgresql://...`, or a SQLite file path; None: the embedded store's
    #: default file (`$TOLLMETER_DB`, else ~/.local/share/tollmeter/tollmeter.db).
    database_url: str | None = None
    #: A rate card (YAML, JSON or TOML) for pricing events that arrive unpriced.
    prices: str | None = None
    #: The request body as sent (compressed or not).
    max_body_bytes: int = 5 * MiB
    #: The body after gzip decompression (a gzip bomb stops here, undecompressed beyond it).
    max_decompressed_bytes: int = 50 * MiB
    #: Events in one batch.
    max_batch_events: int = 10_000
    #: Longest budget lease, in seconds (a longer ttl_seconds is cut to it).
    max_lease_ttl: float = 300.0
    #: Lease grants a process runs at once, each on a worker thread; the next ones wait their
    #: turn, first come first served. Two keep the process busy while one waits for the
    #: database; more only compete for the interpreter's lock, and some requests then wait
    #: for it far longer than others (a thread each for 8 at once: 2% took 6-20 times the
    #: median; docs/benchmarks.md "Leases").
    lease_concurrency: int = 2
    #: Apply the database migrations at start-up.
    migrate: bool = True
    #: The bearer token that opens GET /metrics (they span every project, so no API key does);
    #: None: /metrics is off (404).
    metrics_token: str | None = field(default=None, repr=False)
    #: Price an event that arrives unpriced from a gateway or proxy at the first-party model its
    #: id names (as the agent's MeterConfig.infer_prices); off: it stays unpriced.
    infer_prices: bool = True
    #: Once started, keep the objects alive then out of the garbage collector's walks
    #: (heap.for_serving, which sets its GC thresholds too): on for `tollmeter serve`, off for an app made in another program.
    freeze_heap: bool = False
    #: Once started, make the month's leak report of the busiest projects on a thread of its
    #: own (business/warm.py), so that the first one asked reads what it keeps: on for
    #: `tollmeter serve`, off for an app made in another program.
    warm_reports: bool = False

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_decompressed_bytes", "max_batch_events", "max_lease_ttl",
                     "lease_concurrency"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        environ = os.environ if environ is None else environ
        values: dict = {}
        for f in fields(cls):
            raw = environ.get(ENVIRONMENT[f.name])
            if raw is None or raw == "":
                continue
            if f.name in ("max_body_bytes", "max_decompressed_bytes"):
                values[f.name] = parse_size(raw)
            elif f.name in ("max_batch_events", "lease_concurrency"):
                values[f.name] = int(raw)
            elif f.name == "max_lease_ttl":
                values[f.name] = float(raw)
            elif f.name in ("migrate", "infer_prices", "freeze_heap", "warm_reports"):
                values[f.name] = raw.strip().lower() not in ("0", "false", "no", "off")
            else:
                values[f.name] = raw
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        out = {}
        for name, value in asdict(self).items():
            if value is None:
                continue
            out[ENVIRONMENT[name]] = ("1" if value else "0") if isinstance(value, bool) else str(value)
        return out


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]i?b?|b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`5242880`, `512K`, `5M`, `5MB`, `5MiB`, `1G` (K, M, G are powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"expected a size like 5M or 5242880, got {text!r}")
    number, unit = int(match.group(1)), (match.group(2) or "b").lower()
    return number * {"b": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}[unit[0]]
