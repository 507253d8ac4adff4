"""Reviewer accounts of the console: passwords (argon2id), roles, sessions, audit.

The console keeps its own SQLite file (``console.db``), apart from the member's state
file: accounts are people, not ledger state. Passwords are stored only as argon2id
hashes (argon2-cffi, RFC 9106 parameters) and re-hashed when the parameters change.
A session is a random token; only its SHA-256 is stored, with a CSRF token, an idle
and an absolute expiry, and the previews its reviewer revealed. Disabling an account
ends its sessions at once. Every action lands in the ``audit`` table with the
reviewer's name; nothing here logs a password or a token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from exchange.core.errors import AuthenticationError, InvalidInput, NotFound, ResourceExhausted

__all__ = ["AccountStore", "Account", "AuditEvent", "Prefs", "Role", "Session", "MIN_PASSWORD_LENGTH"]

MIN_PASSWORD_LENGTH = 12
IDLE_TIMEOUT_MS = 30 * 60 * 1000
ABSOLUTE_TIMEOUT_MS = 12 * 3600 * 1000
MAX_FAILED_LOGINS = 5
LOCKOUT_MS = 15 * 60 * 1000
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    prefs TEXT NOT NULL DEFAULT '{}',
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until_ms INTEGER NOT NULL DEFAULT 0,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL REFERENCES accounts(name),
    csrf TEXT NOT NULL,
    revealed TEXT NOT NULL DEFAULT '[]',
    created_at_ms INTEGER NOT NULL,
    seen_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);
"""


class Role(StrEnum):
    """reviewer < lead < admin: each role can do what the ones below it can."""

    REVIEWER = "reviewer"
    LEAD = "lead"
    ADMIN = "admin"

    def at_least(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)


@dataclass(frozen=True, slots=True, kw_only=True)
class Prefs:
    """A reviewer's wellness settings for previews (revealing stays an explicit action)."""

    blur: bool = True
    greyscale: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    name: str
    role: Role
    disabled: bool
    prefs: Prefs
    created_at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    account: Account
    csrf: str
    revealed: frozenset[int]
    token_hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    at_ms: int
    actor: str
    action: str
    target: str
    detail: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise InvalidInput("an account name is 1-64 characters of a-z, 0-9, '.', '_' or '-'")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


class AccountStore:
    def __init__(self, path: str | Path, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._clock_ms = clock_ms
        self._hasher = PasswordHasher()
        # verified against when the name is unknown, so timing does not reveal which names exist
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    def close(self) -> None:
        self._conn.close()

    # -- accounts ----------------------------------------------------------------------

    def create(self, name: str, password: str, role: Role | str, actor: str = "cli") -> Account:
        check_name(name)
        check_password(password)
        role = Role(role)
        now = self._clock_ms()
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO accounts (name, role, password_hash, created_at_ms) VALUES (?, ?, ?, ?)",
                    (name, role.value, self._hasher.hash(password), now),
                )
            except sqlite3.IntegrityError as exc:
                raise InvalidInput(f"account {name} exists") from exc
            self.audit(actor, "account-create", name, f"role {role.value}")
        return self.get(name)

    def get(self, name: str) -> Account:
        r = self._conn.execute(
            "SELECT name, role, disabled, prefs, created_at_ms FROM accounts WHERE name = ?", (name,)
        ).fetchone()
        if r is None:
            raise NotFound(f"no console account {name}")
        return Account(
            name=str(r[0]), role=Role(str(r[1])), disabled=bool(r[2]),
            prefs=Prefs(**json.loads(str(r[3]))), created_at_ms=int(r[4]),
        )

    def all(self) -> list[Account]:
        return [self.get(str(r[0])) for r in self._conn.execute("SELECT name FROM accounts ORDER BY name")]

    def set_disabled(self, name: str, disabled: bool, actor: str = "cli") -> Account:
        """Disable (ending every session of the account) or enable an account."""
        with self._lock:
            self.get(name)
            self._conn.execute("UPDATE accounts SET disabled = ? WHERE name = ?", (int(disabled), name))
            if disabled:
                self._conn.execute("DELETE FROM sessions WHERE name = ?", (name,))
            else:
                self._conn.execute("UPDATE accounts SET failed_logins = 0, locked_until_ms = 0 WHERE name = ?", (name,))
            self.audit(actor, "account-disable" if disabled else "account-enable", name)
        return self.get(name)

    def set_role(self, name: str, role: Role | str, actor: str = "cli") -> Account:
        role = Role(role)
        with self._lock:
            self.get(name)
            self._conn.execute("UPDATE accounts SET role = ? WHERE name = ?", (role.value, name))
            self.audit(actor, "account-role", name, f"role {role.value}")
        return self.get(name)

    def set_password(self, name: str, password: str, actor: str = "cli") -> None:
        check_password(password)
        with self._lock:
            self.get(name)
            self._conn.execute("UPDATE accounts SET password_hash = ? WHERE name = ?", (self._hasher.hash(password), name))
            self._conn.execute("DELETE FROM sessions WHERE name = ?", (name,))
            self.audit(actor, "account-password", name)

    def set_prefs(self, name: str, prefs: Prefs) -> Account:
        with self._lock:
            self._conn.execute(
                "UPDATE accounts SET prefs = ? WHERE name = ?",
                (json.dumps({"blur": prefs.blur, "greyscale": prefs.greyscale}), name),
            )
            self.audit(name, "prefs", name, f"blur={prefs.blur} greyscale={prefs.greyscale}")
        return self.get(name)

    # -- login and sessions ------------------------------------------------------------

    def login(self, name: str, password: str) -> tuple[str, Session]:
        """Check a password and open a new session; returns (cookie token, session).

        Unknown names, wrong passwords and disabled accounts fail alike; five
        failures lock the account for 15 minutes.
        """
        now = self._clock_ms()
        r = self._conn.execute(
            "SELECT password_hash, disabled, locked_until_ms FROM accounts WHERE name = ?", (name,)
        ).fetchone()
        stored = str(r[0]) if r is not None else self._dummy_hash
        try:
            ok = self._hasher.verify(stored, password) and r is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if r is not None and int(r[2]) > now:
            self.audit(name, "login-locked")
            raise ResourceExhausted("too many failed logins: try again in 15 minutes or ask an admin")
        if not ok or r is None or bool(r[1]):
            if r is not None:
                with self._lock:
                    self._conn.execute(
                        "UPDATE accounts SET failed_logins = failed_logins + 1,"
                        " locked_until_ms = CASE WHEN failed_logins + 1 >= ? THEN ? ELSE locked_until_ms END"
                        " WHERE name = ?",
                        (MAX_FAILED_LOGINS, now + LOCKOUT_MS, name),
                    )
                self.audit(name, "login-failed", detail="disabled" if r[1] else "bad password")
            raise AuthenticationError("wrong name or password, or the account is disabled")
        with self._lock:
            if self._hasher.check_needs_rehash(stored):
                self._conn.execute(
                    "UPDATE accounts SET password_hash = ? WHERE name = ?", (self._hasher.hash(password), name)
                )
            self._conn.execute("UPDATE accounts SET failed_logins = 0, locked_until_ms = 0 WHERE name = ?", (name,))
            token = secrets.token_urlsafe(32)
            self._conn.execute(
                "INSERT INTO sessions (token_hash, name, csrf, created_at_ms, seen_at_ms) VALUES (?, ?, ?, ?, ?)",
                (_token_hash(token), name, secrets.token_urlsafe(32), now, now),
            )
            self.audit(name, "login")
        session = self.session(token)
        if session is None:  # only if the clock jumped past both timeouts
            raise AuthenticationError("the new session expired at once: check the console's clock")
        return token, session

    def session(self, token: str | None) -> Session | None:
        """The live session of a cookie token, or None (expired, ended, disabled)."""
        if not token:
            return None
        now = self._clock_ms()
        th = _token_hash(token)
        with self._lock:
            r = self._conn.execute(
                "SELECT s.name, s.csrf, s.revealed, s.created_at_ms, s.seen_at_ms, a.disabled FROM sessions s"
                " JOIN accounts a ON a.name = s.name WHERE s.token_hash = ?",
                (th,),
            ).fetchone()
            if r is None:
                return None
            if bool(r[5]) or now - int(r[4]) > IDLE_TIMEOUT_MS or now - int(r[3]) > ABSOLUTE_TIMEOUT_MS:
                self._conn.execute("DELETE FROM sessions WHERE token_hash = ?", (th,))
                return None
            self._conn.execute("UPDATE sessions SET seen_at_ms = ? WHERE token_hash = ?", (now, th))
        return Session(
            account=self.get(str(r[0])), csrf=str(r[1]),
            revealed=frozenset(int(i) for i in json.loads(str(r[2]))), token_hash=th,
        )

    def logout(self, session: Session) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM sessions WHERE token_hash = ?", (session.token_hash,))
            self.audit(session.account.name, "logout")

    def grant_reveal(self, session: Session, item_id: int) -> Session:
        """Record that this session's reviewer chose to reveal an item's preview."""
        revealed = session.revealed | {item_id}
        with self._lock:
            self._conn.execute(
                "UPDATE sessions SET revealed = ? WHERE token_hash = ?",
                (json.dumps(sorted(revealed)), session.token_hash),
            )
            self.audit(session.account.name, "reveal", f"item {item_id}")
        return replace(session, revealed=frozenset(revealed))

    # -- audit -------------------------------------------------------------------------

    def audit(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?)", (self._clock_ms(), actor, action, target, detail)
            )

    def audit_events(self, actor: str | None = None, offset: int = 0, limit: int = 100) -> list[AuditEvent]:
        """The console's audit trail, newest first (one actor's, or everyone's)."""
        rows = self._conn.execute(
            "SELECT at_ms, actor, action, target, detail FROM audit WHERE ? IS NULL OR actor = ?"
            " ORDER BY rowid DESC LIMIT ? OFFSET ?",
            (actor, actor, limit, offset),
        )
        return [
            AuditEvent(at_ms=int(r[0]), actor=str(r[1]), action=str(r[2]), target=str(r[3]), detail=str(r[4]))
            for r in rows
        ]
