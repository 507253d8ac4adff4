"""The account lookup hook: a shared indicator becomes a queue item about the member's own
account, is withdrawn with its signal, and no identifier ever reaches the logs."""

from __future__ import annotations

import logging

import pytest

from clients.accounts import AccountDirectory, AccountIndicator, account_value
from clients.policy import Policy
from clients.queue import State
from tests.conftest import GROUP_ALL, TaskForce, accepted

SECRET = b"task-force-secret-INSECURE-test"
ENQUEUE = Policy.from_toml('default = "enqueue"\ndefault_priority = 0\n')


def test_account_hook_queues_my_own_account_and_never_logs_identifiers(
    taskforce: TaskForce, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    email, phone = "Groomer@Example.invalid", "+1 (555) 010-9999"
    alice = taskforce.client("alice")
    accepted(alice.publish([
        alice.signal("account", account_value("examplechat", "email", email, SECRET), groups=[GROUP_ALL],
                     signal_id="acct-email", labels=["grooming"]),
        alice.signal("account", account_value("examplechat", "phone", phone, SECRET), groups=[GROUP_ALL],
                     signal_id="acct-phone"),
        alice.signal("account", "otherchat:id:123", groups=[GROUP_ALL], signal_id="not-ours"),
    ]))

    directory = AccountDirectory(SECRET, platform="examplechat")
    directory.add("user-8812", "email", "groomer@example.invalid ")  # normalized before the HMAC
    directory.add("user-8813", "email", "someone.else@example.invalid")
    calls: list[AccountIndicator] = []

    def hook(indicator: AccountIndicator) -> list[str]:
        calls.append(indicator)
        return directory(indicator)

    bob = taskforce.client("bob", state=True, policy=ENQUEUE, account_lookup=hook)
    report = bob.sync()
    assert report.queued == 1
    (item,) = bob.queue.items()
    assert (item.content_ref, item.signal_id, item.type, item.state) == (
        "account:user-8812", "acct-email", "account", State.PENDING
    )
    assert {c.signal_id for c in calls} == {"acct-email", "acct-phone", "not-ours"}
    assert all(c.identifier not in repr(c) for c in calls)

    # adding a user later: re-run the hook over what the bank already holds
    directory.add("user-9000", "phone", "+15550109999")
    assert bob.rematch_accounts() == 1
    assert bob.rematch_accounts() == 0  # idempotent
    # matching one of my accounts directly, by its indicator values
    pairs = bob.match_accounts("user-8812", [account_value("examplechat", "email", email, SECRET)])
    assert [m.content_ref for m, _ in pairs] == ["account:user-8812"]

    # a failing hook is logged by type only
    def broken(indicator: AccountIndicator) -> list[str]:
        raise LookupError(f"no user for {email} / {indicator.identifier}")

    carol = taskforce.client("carol", state=True, policy=ENQUEUE, account_lookup=broken)
    assert carol.sync().queued == 0

    accepted(alice.publish([alice.retraction("acct-email", "false_positive")]))
    assert bob.sync().withdrawn == 1
    assert bob.queue.get(item.id).state is State.WITHDRAWN

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "LookupError" in logged
    secrets = [email, email.lower(), "5550109999", "010-9999", "user-8812", "user-9000"]  # not "555": a port can hold it
    secrets += [account_value("examplechat", "email", email, SECRET).split(":")[2]]
    for s in secrets:
        assert s not in logged, s


def test_directory_keeps_only_hmacs() -> None:
    d = AccountDirectory(SECRET, platform="ExampleChat")
    d.add("u1", "username", "@Someone")
    assert "someone" not in repr(d).lower() and "u1" not in repr(d)
    ind = AccountIndicator.parse(account_value("examplechat", "username", "someone", SECRET))
    assert d(ind) == ["u1"]
    assert d(AccountIndicator.parse(account_value("examplechat", "username", "other", SECRET))) == []
