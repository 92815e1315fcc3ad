"""Sessions, CSRF, log-in limits and security headers.

- The session is starlette's signed cookie (itsdangerous; HttpOnly, SameSite=Lax, Secure when
  configured) holding the account name, its expiry (from the settings' clock) and a CSRF token.
  The account's role is read from the store on every request: a disabled account is out at once.
- CSRF: a token bound to the session, in a hidden field of every form, compared on every POST
  (log-in and log-out included) before the route runs.
- Log-in limits: after ``login_failures`` failures for one account from one client within
  ``login_window``, further attempts are refused until the oldest failure leaves the window.
  Kept in the process's memory: one ``pathways web`` process per store (several processes would
  each allow that many).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import threading
from collections import defaultdict, deque

from fastapi import HTTPException, Request

from pathways.access import Actor
from pathways.clock import Clock
from pathways.store.audit import Record
from pathways.store.db import Store
from pathways.store.vocabulary import Action, Key

ANONYMOUS = Actor(user="anonymous", role="none", via="web")

HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # pages hold patient data: not kept by the browser or a proxy
}


async def security_headers(request: Request, call_next):
    response = await call_next(request)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


class CsrfRefused(HTTPException):
    def __init__(self):
        super().__init__(403, "The form's security token is missing or does not match this session: reload the page and try again.")


FORM_OVERHEAD = 64 * 1024  # a form's other fields and multipart boundaries beside an uploaded file


def _body_within_limit(request: Request) -> None:
    """A POST larger than an upload may be is refused before it is read (413); one without a
    declared length (chunked) too (411): browsers always declare it."""
    allowed = request.app.state.settings.max_upload_bytes
    limit = allowed + FORM_OVERHEAD
    length = request.headers.get("content-length")
    if length is None:
        if request.headers.get("transfer-encoding"):
            raise HTTPException(411, "send the form with a Content-Length")
        return
    if not length.isdigit():
        raise HTTPException(400, "the request's Content-Length is not a number")
    if int(length) > limit:
        raise HTTPException(413, f"the request is larger than the {allowed // 1_000_000 or allowed} "
                                 f"{'MB' if allowed >= 1_000_000 else 'bytes'} a patient file may be; nothing was stored")


async def check_csrf(request: Request) -> None:
    """Every POST carries the session's token (app-wide dependency)."""
    if request.method != "POST":
        return
    _body_within_limit(request)
    form = await request.form()
    sent, kept = form.get("csrf"), request.session.get("csrf")
    if not isinstance(sent, str) or not kept or not hmac.compare_digest(sent, kept):
        store = request.app.state.store_for(ANONYMOUS)
        store.record_audit([Record(Action.ACCESS_DENIED, subject=request.url.path,
                                   payload={Key.PERMISSION: "csrf", Key.ATTEMPTED: f"POST {request.url.path} without a valid CSRF token",
                                            Key.VIA: "web"})])
        raise CsrfRefused()


def start_session(request: Request, user: str, clock: Clock, lifetime: dt.timedelta) -> None:
    request.session.clear()  # a new session after log-in: nothing carried over from before (fixation)
    request.session.update({"user": user, "expires": (clock.now() + lifetime).isoformat(), "csrf": secrets.token_urlsafe(32)})


def session_user(request: Request, clock: Clock) -> str | None:
    """The logged-in account's name, or None (no session, or it expired: then it is cleared)."""
    user, expires = request.session.get("user"), request.session.get("expires")
    if not user or not expires:
        return None
    if clock.now() >= dt.datetime.fromisoformat(expires):
        request.session.clear()
        return None
    return user


class NotLoggedIn(Exception):
    """The request needs a logged-in account."""


class LoginLimiter:
    """Failed log-ins per (account, client), in memory, timed by the injected clock."""

    def __init__(self, clock: Clock, failures: int, window: dt.timedelta):
        self.clock, self.failures, self.window = clock, failures, window
        self._seen: dict[tuple[str, str], deque[dt.datetime]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str]) -> deque[dt.datetime]:
        times = self._seen[key]
        cutoff = self.clock.now() - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def blocked_until(self, user: str, client: str) -> dt.datetime | None:
        with self._lock:
            key = (user.lower(), client)
            times = self._recent(key)
            if not times:  # nothing recent: forgotten (names tried once do not pile up)
                del self._seen[key]
                return None
            return times[0] + self.window if len(times) >= self.failures else None

    def failed(self, user: str, client: str) -> None:
        with self._lock:
            self._recent((user.lower(), client)).append(self.clock.now())

    def succeeded(self, user: str, client: str) -> None:
        with self._lock:
            self._seen.pop((user.lower(), client), None)


def audit_denial(store: Store, permission: str, what: str, subject: str) -> None:
    store.record_audit([Record(Action.ACCESS_DENIED, subject=subject, payload={Key.PERMISSION: permission, Key.ATTEMPTED: what, Key.VIA: "web"})])
