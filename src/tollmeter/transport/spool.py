"""Spool: batches the ingest server could not take, kept on disk until it can.

Each batch is one file (the gzip body exactly as it would have been POSTed), written
atomically; they are sent oldest first when the server answers again, also by a later process
(after a restart) that spools to the same directory. Several processes may share a directory:
a file is claimed by renaming it before it is sent. The directory is bounded: past
`max_bytes` the oldest batches are dropped, counted and reported, never silently.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("tollmeter")

_SUFFIX = ".json.gz"
_CLAIMED = ".sending"
#: A claimed file untouched this long belonged to a process that died while sending it.
STALE_CLAIM_SECONDS = 300.0


@dataclass
class SpoolStats:
    spooled: int = 0  # events written to the spool
    replayed: int = 0  # events sent from the spool
    dropped: int = 0  # events dropped from a full spool


@dataclass(frozen=True)
class SpooledBatch:
    path: Path
    body: bytes
    events: int


class Spool:
    def __init__(self, directory: str | os.PathLike, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.stats = SpoolStats()

    def put(self, body: bytes, events: int) -> bool:
        """Keep a batch; False if the disk refused it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.{events}{_SUFFIX}"
            temporary = self.directory / f".{name}.tmp"
            temporary.write_bytes(body)
            os.replace(temporary, self.directory / name)
        except OSError as exc:
            logger.warning("tollmeter: could not spool a batch of %d events: %s", events, exc)
            return False
        self.stats.spooled += events
        self._trim()
        return True

    def pending(self) -> list[Path]:
        """Spooled batches not being sent, oldest first (stale claims are taken back)."""
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return []
        now = time.time()
        for entry in entries:
            if entry.name.endswith(_CLAIMED):
                try:
                    if now - entry.stat().st_mtime > STALE_CLAIM_SECONDS:
                        os.replace(entry, entry.with_name(entry.name[: -len(_CLAIMED)]))
                except OSError:
                    pass
        return sorted(p for p in self.directory.glob(f"[0-9]*{_SUFFIX}"))

    def has_pending(self) -> bool:
        """Whether any batch waits here (also one another process is sending, which may be a
        dead one's): one directory read, for deciding at start-up whether to replay."""
        try:
            with os.scandir(self.directory) as entries:
                return any(e.name[:1].isdigit() and (e.name.endswith(_SUFFIX) or e.name.endswith(_CLAIMED))
                           for e in entries)
        except OSError:
            return False

    def after_fork_in_child(self) -> None:
        """A forked child counts its own batches (the files stay shared by both processes)."""
        self.stats = SpoolStats()

    def claim(self, path: Path) -> SpooledBatch | None:
        """Take a batch for sending; None if another process took it first."""
        claimed = path.with_name(path.name + _CLAIMED)
        try:
            os.replace(path, claimed)
            body = claimed.read_bytes()
        except OSError:
            return None
        return SpooledBatch(claimed, body, _events_in(path.name))

    def sent(self, batch: SpooledBatch) -> None:
        try:
            batch.path.unlink()
        except OSError:
            pass
        self.stats.replayed += batch.events

    def put_back(self, batch: SpooledBatch) -> None:
        try:
            os.replace(batch.path, batch.path.with_name(batch.path.name[: -len(_CLAIMED)]))
        except OSError:
            pass

    def size(self) -> int:
        return sum(_size(p) for p in self.pending())

    def _trim(self) -> None:
        pending = self.pending()
        total = sum(_size(p) for p in pending)
        for path in pending:
            if total <= self.max_bytes:
                break
            total -= _size(path)
            try:
                path.unlink()
            except OSError:
                continue
            lost = _events_in(path.name)
            self.stats.dropped += lost
            logger.error("tollmeter: the spool is full (%d bytes): dropped %d undelivered events",
                         self.max_bytes, lost)


def _events_in(name: str) -> int:
    try:
        return int(name.split(".")[1])
    except (IndexError, ValueError):
        return 0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
