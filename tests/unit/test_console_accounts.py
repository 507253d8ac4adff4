"""Console accounts: argon2id, sessions that expire, lockout, roles, audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from clients.console.accounts import (
    ABSOLUTE_TIMEOUT_MS,
    IDLE_TIMEOUT_MS,
    LOCKOUT_MS,
    MAX_FAILED_LOGINS,
    AccountStore,
    Prefs,
    Role,
)
from exchange.core.errors import AuthenticationError, InvalidInput, ResourceExhausted

PASSWORD = "twelve chars or more"


class Clock:
    now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> AccountStore:
    s = AccountStore(tmp_path / "console.db", clock_ms=clock)
    s.create("ana", PASSWORD, Role.REVIEWER)
    return s


def test_sessions_expire_when_idle_and_after_twelve_hours(store: AccountStore, clock: Clock) -> None:
    token, session = store.login("ana", PASSWORD)
    assert session.account.role is Role.REVIEWER and store.session(token) is not None
    clock.now += IDLE_TIMEOUT_MS + 1
    assert store.session(token) is None  # idle too long; and gone for good
    clock.now -= IDLE_TIMEOUT_MS + 1
    assert store.session(token) is None
    token, _ = store.login("ana", PASSWORD)
    start = clock.now
    for _ in range(2 * ABSOLUTE_TIMEOUT_MS // IDLE_TIMEOUT_MS + 2):  # active all day: still ends
        clock.now += IDLE_TIMEOUT_MS // 2
        if store.session(token) is None:
            assert clock.now - start > ABSOLUTE_TIMEOUT_MS
            break
    else:
        raise AssertionError("a session outlived the absolute timeout")
    assert store.session(None) is None and store.session("forged-token") is None


def test_password_guessing_locks_the_account_until_the_lockout_ends(store: AccountStore, clock: Clock) -> None:
    for n in range(MAX_FAILED_LOGINS):
        with pytest.raises(AuthenticationError):
            store.login("ana", f"wrong password {n}")
    with pytest.raises(ResourceExhausted):
        store.login("ana", PASSWORD)
    clock.now += LOCKOUT_MS + 1
    store.login("ana", PASSWORD)
    actions = [e.action for e in store.audit_events("ana")]
    assert actions[0] == "login" and actions.count("login-failed") == MAX_FAILED_LOGINS
    assert all(PASSWORD not in e.detail for e in store.audit_events())


def test_disabled_accounts_cannot_log_in_and_their_sessions_end(store: AccountStore) -> None:
    token, _ = store.login("ana", PASSWORD)
    store.set_disabled("ana", True)
    assert store.session(token) is None
    with pytest.raises(AuthenticationError, match="wrong name or password, or the account is disabled"):
        store.login("ana", PASSWORD)
    store.set_disabled("ana", False)
    store.login("ana", PASSWORD)


def test_weak_hash_parameters_are_upgraded_on_login(tmp_path: Path, clock: Clock) -> None:
    store = AccountStore(tmp_path / "c.db", clock_ms=clock)
    store._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # an older, weaker setting
    store.create("ben", PASSWORD, "lead")
    store._hasher = PasswordHasher()
    store.login("ben", PASSWORD)
    (stored,) = store._conn.execute("SELECT password_hash FROM accounts").fetchone()
    assert stored.startswith("$argon2id$") and not store._hasher.check_needs_rehash(stored)


def test_names_passwords_roles_and_prefs(store: AccountStore) -> None:
    with pytest.raises(InvalidInput, match="at least 12"):
        store.create("ben", "short", "reviewer")
    with pytest.raises(InvalidInput, match="account name"):
        store.create("Ben Smith", PASSWORD, "reviewer")
    with pytest.raises(InvalidInput, match="exists"):
        store.create("ana", PASSWORD, "reviewer")
    assert Role.ADMIN.at_least(Role.LEAD) and not Role.REVIEWER.at_least(Role.LEAD)
    assert store.get("ana").prefs == Prefs(blur=True, greyscale=True)  # wellness defaults
    assert store.set_prefs("ana", Prefs(blur=False, greyscale=True)).prefs.blur is False
    token, _ = store.login("ana", PASSWORD)
    store.set_password("ana", "another long password")
    assert store.session(token) is None  # a new password ends the old sessions
