"""Where tollmeter keeps its files by default."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def data_dir() -> Path:
    """`$XDG_DATA_HOME/tollmeter`, by default ~/.local/share/tollmeter."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "tollmeter"


def default_store() -> Path:
    """The embedded store: `$TOLLMETER_DB`, else ~/.local/share/tollmeter/tollmeter.db."""
    explicit = os.environ.get("TOLLMETER_DB")
    return Path(explicit) if explicit else data_dir() / "tollmeter.db"


def default_spool(url: str) -> Path:
    """The spool of undelivered batches for one ingest URL."""
    return data_dir() / "spool" / hashlib.sha256(url.encode()).hexdigest()[:16]
