"""Warming a serving process's kept reports: at start, on a thread of its own, the month's leak
report of the busiest projects is made once, so that the closed days' figures it keeps
(closed_days.py) are there before anyone asks. Those are kept per process; without this, the
first leak report a process is asked for folds every customer's forty-odd days (at a month's
end over 10,000,000 events, 1,000 customers: 300-700 ms, against 60-120 once kept).

The busiest projects are those with customers' plans and the most calls on the last
`recent_days` days, at most as many as closed_days keeps (`closed_days.PROJECTS`). A project
whose report fails is logged and skipped; stopping waits for the report in progress, at most
`stop`'s timeout.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ..store import revisions, schema
from ..store.ledger import Ledger
from . import closed_days

if TYPE_CHECKING:
    from ..store.store import Store

logger = logging.getLogger("tollmeter.business")


class ReportWarmer:
    def __init__(self, store: Store, projects: int = closed_days.PROJECTS, recent_days: int = 2) -> None:
        self.store = store
        self.projects = projects
        self.recent_days = recent_days
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set once the pass has ended (every project warmed, skipped or stopped).
        self.done = threading.Event()
        #: The projects warmed, in the order they were.
        self.warmed: list[str] = []

    def busiest(self) -> list[str]:
        """The projects with customers' plans (whose leak rules have revenue to weigh) and calls
        on the last `recent_days` UTC days, the most calls first. Each project's calls are
        summed through the tenant rollup's index on (project, day): a few rows per customer,
        not the whole table's history."""
        t, plans = schema.tenant_rollup, schema.customer_plans
        since = revisions.now().date() - timedelta(days=self.recent_days - 1)
        projects = select(plans.c.project_id).distinct().subquery()
        calls = (select(func.sum(t.c.calls)).where(t.c.project_id == projects.c.project_id, t.c.day >= since)
                 .scalar_subquery())
        with self.store.transaction() as conn:
            found = conn.execute(select(projects.c.project_id, calls)).all()
        ranked = sorted((-n, project) for project, n in found if n)
        return [project for _, project in ranked[:self.projects]]

    def run(self) -> list[str]:
        """Make the leak report of each of the busiest projects (until stopped); the ones made."""
        try:
            try:
                chosen = self.busiest()
            except Exception:
                logger.exception("warming the reports: finding the busiest projects failed")
                return self.warmed
            for project in chosen:
                if self._stop.is_set():
                    break
                try:
                    Ledger(self.store.for_project(project)).leaks(today=revisions.now().date())
                except Exception:
                    logger.exception("warming the leak report of project %s failed", project)
                    continue
                self.warmed.append(project)
            if self.warmed:
                logger.info("warmed the leak reports of %d projects", len(self.warmed))
            return self.warmed
        finally:
            self.done.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="tollmeter-warm-reports", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """No project after the one in progress; wait for that one, at most `timeout` seconds."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
