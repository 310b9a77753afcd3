"""Dashboard sessions: a signed cookie (itsdangerous), HttpOnly, SameSite=Strict, that expires.

The cookie holds the signed-in project, the id of the key used to sign in (checked again on
every request, so revoking the key ends its sessions) and the session's CSRF token; it holds no
key and no secret. Its signature carries its issue time: a cookie older than `max_age` is
refused even if a browser kept it. The signing secret is `TOLLMETER_DASHBOARD_SECRET`, shared by
every replica; without it each process draws one at start (sessions then last until a restart
and hold on one replica only).

Every form carries the session's CSRF token (`csrf`); a POST without the same token is refused
with 403, sign-in included (a page elsewhere cannot sign a browser into another project)."""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "tollmeter_session"
SECRET_ENV = "TOLLMETER_DASHBOARD_SECRET"
#: How long a sign-in lasts, in seconds (8 hours).
MAX_AGE = 8 * 3600


@dataclass
class Session:
    csrf: str
    #: The signed-in project and the id of its key (None: not signed in).
    project: str | None = None
    key_id: str | None = None
    #: True when the cookie must be (re)written on the response.
    fresh: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"c": self.csrf, "p": self.project, "k": self.key_id}


class Sessions:
    def __init__(self, secret: str | None = None, *, max_age: int = MAX_AGE, https_only: bool = False) -> None:
        secret = secret or os.environ.get(SECRET_ENV) or secrets.token_urlsafe(32)
        self.max_age = max_age
        self.https_only = https_only
        self._signer = URLSafeTimedSerializer(secret, salt="tollmeter-dashboard-session")

    def load(self, request: Request) -> Session:
        """The request's session, or a new anonymous one (with a CSRF token of its own)."""
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self._signer.loads(raw, max_age=self.max_age)
                if isinstance(data, dict) and isinstance(data.get("c"), str):
                    return Session(data["c"], data.get("p"), data.get("k"))
            except BadSignature:  # tampered, or expired (SignatureExpired is a BadSignature)
                pass
        return Session(secrets.token_urlsafe(24), fresh=True)

    def signed_in(self, project: str, key_id: str) -> Session:
        """A new session for a sign-in: a new CSRF token too (no fixation of the old one)."""
        return Session(secrets.token_urlsafe(24), project, key_id, fresh=True)

    def save(self, response: Response, session: Session) -> None:
        response.set_cookie(COOKIE, self._signer.dumps(session.to_dict()), max_age=self.max_age, path="/",
                            httponly=True, samesite="strict", secure=self.https_only)

    def clear(self, response: Response) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=self.https_only)


def csrf_ok(session: Session, sent: Any) -> bool:
    """Whether a form's token is the session's (compared in constant time)."""
    return isinstance(sent, str) and bool(sent) and hmac.compare_digest(sent.encode(), session.csrf.encode())
