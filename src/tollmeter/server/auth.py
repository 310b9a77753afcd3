"""API keys: `tm_<key id>_<secret>`, shown once when created and stored as a SHA-256 hash.

A key is 32 random bytes (256 bits): a plain SHA-256 of it cannot be reversed or guessed, so no
slow password hash is needed, and a request is authenticated by looking its key's hash up (an
indexed, unique column); the digest found is compared once more in constant time. The key id
in the key lets `tollmeter keys list` and `keys revoke` name a key without storing it.
A key belongs to one project and sees and writes only that project's data.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from sqlalchemy import insert, select, update

from ..store import schema

if TYPE_CHECKING:
    from ..store.store import Store

KEY_PREFIX = "tm_"
PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KEY_SHAPE = re.compile(r"^tm_([0-9a-f]{12})_[A-Za-z0-9_-]{20,100}$")


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    project_id: str
    created_at: datetime
    revoked_at: datetime | None
    note: str | None

    @property
    def prefix(self) -> str:
        """How the key begins: enough to recognise it, useless to use it."""
        return f"{KEY_PREFIX}{self.key_id}_..."


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_project(name: str) -> str:
    if not isinstance(name, str) or not PROJECT_NAME.match(name):
        raise ValueError(f"a project name is 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    return name


def create_key(store: Store, project: str, note: str | None = None) -> tuple[ApiKey, str]:
    """A new key for `project`: (its record, the key itself, which is not kept anywhere)."""
    check_project(project)
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    now = datetime.now(timezone.utc)
    with store.transaction() as conn:
        conn.execute(insert(schema.api_keys).values(key_id=key_id, project_id=project, key_hash=key_hash(key),
                                                    created_at=now, note=note))
    return ApiKey(key_id, project, now, None, note), key


def list_keys(store: Store, project: str | None = None) -> list[ApiKey]:
    t = schema.api_keys
    query = select(t.c.key_id, t.c.project_id, t.c.created_at, t.c.revoked_at, t.c.note)
    if project is not None:
        query = query.where(t.c.project_id == project)
    with store.transaction() as conn:
        rows = conn.execute(query.order_by(t.c.project_id, t.c.created_at)).all()
    return [ApiKey(r[0], r[1], _utc(r[2]), _utc(r[3]) if r[3] else None, r[4]) for r in rows]


def revoke_key(store: Store, key_or_id: str) -> ApiKey | None:
    """Revoke a key given by its id, its prefix (`tm_<id>_...`) or the key itself; None if
    there is no such key. Revoking twice keeps the first time."""
    t = schema.api_keys
    match = _KEY_SHAPE.match(key_or_id)
    if match:
        where = t.c.key_hash == key_hash(key_or_id)
    else:
        key_id = key_or_id.removeprefix(KEY_PREFIX).split("_", 1)[0]
        where = t.c.key_id == key_id
    now = datetime.now(timezone.utc)
    with store.transaction() as conn:
        row = conn.execute(select(t.c.key_id, t.c.project_id, t.c.created_at, t.c.revoked_at, t.c.note)
                           .where(where)).first()
        if row is None:
            return None
        if row[3] is None:
            conn.execute(update(t).where(t.c.key_id == row[0]).values(revoked_at=now))
        return ApiKey(row[0], row[1], _utc(row[2]), _utc(row[3]) if row[3] else now, row[4])


def project_for(store: Store, key: str) -> str | None:
    """The project of a valid, unrevoked key; None otherwise."""
    return project_of_hash(store, key_hash(key)) if _key_shaped(key) else None


class KnownKeys:
    """The project of each key this process found valid, by the key's hash, so that a request
    can skip the look-up (a transaction of its own). A key never changes project, so an entry
    never goes stale in that; a revocation is not seen here, so a request that uses an entry
    must check the key in its own transaction (the lease grant does it in the read it makes
    anyway: `Store.grant_with_rate_limit(key_hash=...)`), and `forget` the key when that check
    fails. Only valid keys are kept, at most `size` (the oldest go first)."""

    def __init__(self, size: int = 4096) -> None:
        self._projects: dict[str, str] = {}
        self._size = size
        self._lock = threading.Lock()

    def project(self, store: Store, key: str) -> tuple[str, str] | None:
        """(project, key hash) of a valid key (as last seen valid), None for a malformed,
        unknown or revoked one."""
        if not _key_shaped(key):
            return None
        digest = key_hash(key)
        project = self._projects.get(digest)
        if project is None:
            project = project_of_hash(store, digest)
            if project is None:
                return None
            with self._lock:
                while len(self._projects) >= self._size:
                    del self._projects[next(iter(self._projects))]
                self._projects[digest] = project
        return project, digest

    def forget(self, digest: str) -> None:
        with self._lock:
            self._projects.pop(digest, None)


def project_of_hash(store: Store, digest: str) -> str | None:
    t = schema.api_keys
    with store.transaction() as conn:
        row = conn.execute(select(t.c.key_hash, t.c.project_id)
                           .where(t.c.key_hash == digest, t.c.revoked_at.is_(None))).first()
    if row is None or not hmac.compare_digest(row[0], digest):
        return None
    return row[1]


def _key_shaped(key: str) -> bool:
    return bool(key) and len(key) <= 200 and key.startswith(KEY_PREFIX)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
