"""Notifier: the server's background notifications, one thread per server process. Every
`interval` seconds it evaluates the rules of each project that has an enabled endpoint and sends
the deliveries due; every `prune_interval` it prunes what is older than `keep_days`
(retention.py). Replicas all run one: the database decides which sends what (rules.py,
outbox.py). Stopped with the app (`stop` waits for the round in progress)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from ..store import schema
from . import retention
from .outbox import Attempt, deliver_due
from .rules import evaluate
from .settings import NotifierSettings

if TYPE_CHECKING:
    from ..store.store import Store

logger = logging.getLogger("tollmeter.notifications")


class Notifier:
    def __init__(self, store: Store, settings: NotifierSettings | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.store = store
        self.settings = settings or NotifierSettings.from_env()
        self._client = httpx.Client(transport=transport, follow_redirects=False, timeout=self.settings.timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: When each project's leak rules were last evaluated (time.monotonic()).
        self._leaks_at: dict[str, float] = {}
        #: The `now` of the last pruning (None: not yet in this process).
        self._pruned_at: datetime | None = None

    def run_once(self, now: datetime | None = None) -> tuple[int, list[Attempt]]:
        """One round: (messages queued, delivery attempts made). A project whose rules fail is
        logged and skipped; the others go on."""
        now = now or datetime.now(timezone.utc)
        queued = 0
        for project in self.projects():
            last = self._leaks_at.get(project)
            leaks = last is None or time.monotonic() - last >= self.settings.leak_interval
            try:
                queued += evaluate(self.store.for_project(project), now, leaks=leaks)
                if leaks:
                    self._leaks_at[project] = time.monotonic()
            except Exception:
                logger.exception("notification rules failed for project %s", project)
        self.prune(now)
        return queued, self.deliver()

    def prune(self, now: datetime) -> None:
        """Prune what is older than `keep_days` (retention.py), at most every `prune_interval`
        seconds of `now` (also when `now` goes back: a clock set right). A failure is logged;
        the next round tries again."""
        last = self._pruned_at
        if last is not None and timedelta(0) <= now - last < timedelta(seconds=self.settings.prune_interval):
            return
        try:
            pruned = retention.prune(self.store, now, self.settings.keep_days, batch=self.settings.prune_batch,
                                     max_batches=100, stop=self._stop.is_set)
        except Exception:
            logger.exception("pruning the notifications failed")
            return
        self._pruned_at = now
        if pruned.notifications or pruned.deliveries:
            logger.info("pruned %d notifications and %d deliveries (%d attempts) older than %d days",
                        pruned.notifications, pruned.deliveries, pruned.attempts, self.settings.keep_days)

    def deliver(self) -> list[Attempt]:
        """Send what is due now, batch after batch, until nothing is (or the notifier stops)."""
        attempts: list[Attempt] = []
        while not self._stop.is_set():
            batch = deliver_due(self.store, self.settings, self._client)
            attempts += batch
            if len(batch) < self.settings.batch:
                break
        return attempts

    def projects(self) -> list[str]:
        t = schema.notification_endpoints
        with self.store.transaction() as conn:
            return list(conn.execute(select(t.c.project_id).distinct().where(t.c.enabled.is_(True))).scalars())

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tollmeter-notifier", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout if timeout is not None else self.settings.timeout + 5)
            self._thread = None
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the database away for a while: the next round tries again
                logger.exception("notification round failed")
            self._stop.wait(self.settings.interval)


def start_notifier(store: Store, settings: NotifierSettings) -> Notifier | None:
    """The server process's notifier, started (None when the settings turn it off)."""
    if not settings.enabled:
        return None
    notifier = Notifier(store, settings)
    notifier.start()
    return notifier
