"""The console over HTTP against a real server: ownership, CSRF, sessions, roles,
previews. Each authorization rule has a test named after the attack."""

from __future__ import annotations

import sqlite3
import ssl
from pathlib import Path

import httpx

from clients.console import HttpsFiles, MediaRoots, Prefs, start_console
from clients.queue import State
from exchange.server.tls import generate_demo_pki
from tests.console.conftest import CSRF, PASSWORD, PDQ_DISTANCE, ConsoleEnv, Reviewer


def test_login_sets_a_strict_http_only_cookie_and_lists_the_queue_by_priority(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    r = ana.login_response
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("tw_session=")][0].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    page = ana.http.get("/")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["content-security-policy"] and page.headers["cache-control"] == "no-store"
    ids = [i.id for i in console.items() if i.state is State.PENDING]
    assert page.text.index(f'href="/items/{console.item_for("a-csam").id}"') < page.text.index(
        f'href="/items/{console.item_for("a-spam").id}"'
    )  # P0 before P2
    assert all(f"/items/{i}" in page.text for i in ids)
    ana.close()


def test_filters_and_paging(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    csam, spam = console.item_for("a-csam"), console.item_for("a-spam")
    by_label = ana.http.get("/", params={"label": "csam"}).text
    assert f"/items/{csam.id}\"" in by_label and f"/items/{spam.id}\"" not in by_label
    by_publisher = ana.http.get("/", params={"publisher": "carol"}).text
    assert f"/items/{console.item_for('c-both').id}\"" in by_publisher and f"/items/{csam.id}\"" not in by_publisher
    assert "1 item," in ana.http.get("/", params={"type": "sha256"}).text
    assert "Nothing matches" in ana.http.get("/", params={"age": "gt24h"}).text
    assert console.bob.queue is not None
    from clients.queue import QueueFilter

    page = console.bob.queue.page(QueueFilter(group="all-members"), offset=1, limit=2)
    assert page.total == len(console.items()) and len(page.items) == 2 and page.offset == 1
    assert ana.http.get("/", params={"state": "bogus"}).status_code == 400
    ana.close()


def test_claim_hijack_is_refused_naming_the_owner(console: ConsoleEnv) -> None:
    item = console.item_for("a-csam")
    ana, ben = Reviewer(console, "ana"), Reviewer(console, "ben")
    assert ana.post(f"/items/{item.id}/claim").status_code == 303
    for action, data in (("claim", {}), ("decide", {"decision": "dismissed", "reason": "mine now"}), ("release", {})):
        r = ben.post(f"/items/{item.id}/{action}", **data)
        assert r.status_code == 409, (action, r.text)
        assert r.headers["x-tw-reason"] == "claim-owned" and "claimed by ana" in r.text
    after = console.bob.queue.get(item.id)  # type: ignore[union-attr]
    assert after.state is State.IN_REVIEW and after.reviewer == "ana"
    assert [e.reviewer for e in console.bob.queue.history(item.id)] == [None, "ana"]  # type: ignore[union-attr]
    # the owner decides; a lead may take an abandoned claim back
    other = console.item_for("a-spam")
    assert ana.post(f"/items/{other.id}/claim").status_code == 303
    lea = Reviewer(console, "lea")
    assert lea.post(f"/items/{other.id}/release", force="1").status_code == 303
    assert "claim of ana taken back" in (console.bob.queue.history(other.id)[-1].reason or "")  # type: ignore[union-attr]
    for c in (ana, ben, lea):
        c.close()


def test_cross_site_request_forgery_is_refused(console: ConsoleEnv) -> None:
    item = console.item_for("a-spam")
    ana = Reviewer(console, "ana")
    no_token = ana.post(f"/items/{item.id}/claim", csrf=None)
    wrong_token = ana.post(f"/items/{item.id}/claim", csrf="forged")
    foreign = ana.http.post(f"/items/{item.id}/claim", data={"csrf": ana.csrf()},
                            headers={"origin": "https://evil.example"})
    for r in (no_token, wrong_token, foreign):
        assert r.status_code == 403 and r.headers["x-tw-reason"] == "permission-denied", r.text
    assert console.bob.queue.get(item.id).state is State.PENDING  # type: ignore[union-attr]
    ana.close()


def test_password_guessing_locks_the_account_and_names_leak_nothing(console: ConsoleEnv) -> None:
    unknown = Reviewer(console, "nobody", "whatever-password").login_response
    wrong = [Reviewer(console, "ben", f"guess-{n}-xxxxxxxx").login_response for n in range(5)]
    assert unknown.status_code == 401 and all(r.status_code == 401 for r in wrong)
    assert "wrong name or password" in unknown.text and "wrong name or password" in wrong[0].text
    locked = Reviewer(console, "ben").login_response
    assert locked.status_code == 429 and "too many failed logins" in locked.text


def test_disabled_account_session_ends_at_once(console: ConsoleEnv) -> None:
    ben = Reviewer(console, "ben")
    assert ben.http.get("/").status_code == 200
    console.accounts.set_disabled("ben", True)
    r = ben.http.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert Reviewer(console, "ben").login_response.status_code == 401


def test_role_escalation_is_refused(console: ConsoleEnv) -> None:
    ana, lea = Reviewer(console, "ana"), Reviewer(console, "lea")
    escalated = console.item_for("a-spam")
    assert lea.post(f"/items/{escalated.id}/claim").status_code == 303
    assert lea.post(f"/items/{escalated.id}/decide", decision="escalated", reason="needs legal").status_code == 303
    attempts = {
        "claim an escalated item": ana.post(f"/items/{escalated.id}/claim"),
        "take back a claim": ana.post(f"/items/{console.item_for('a-csam').id}/release", force="1"),
        "sync": ana.post("/sync"),
        "accounts": ana.http.get("/accounts"),
        "disable an account": ana.post("/accounts/disable", name="lea", disabled="1"),
        "someone else's history": ana.http.get("/history", params={"reviewer": "lea"}),
    }
    for what, r in attempts.items():
        assert r.status_code == 403, (what, r.status_code)
    assert console.bob.queue.get(escalated.id).state is State.ESCALATED  # type: ignore[union-attr]
    assert not console.accounts.get("lea").disabled
    assert lea.post(f"/items/{escalated.id}/claim").status_code == 303  # a lead can
    ana.close()
    lea.close()


def test_reveal_bypass_and_preview_path_traversal_are_refused(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    item = console.item_for("a-csam")
    blurred = ana.http.get(f"/items/{item.id}/preview")
    assert blurred.status_code == 200 and blurred.headers["content-type"] == "image/png"
    assert ana.http.get(f"/items/{item.id}/preview", params={"clear": "1"}).status_code == 403
    assert ana.post(f"/items/{item.id}/reveal").status_code == 303
    clear = ana.http.get(f"/items/{item.id}/preview", params={"clear": "1"})
    assert clear.status_code == 200 and clear.content != blurred.content
    assert [a.action for a in console.accounts.audit_events("ana")][0] == "reveal"
    outside = console.item_for("a-outside")  # hashed from a file outside the media roots
    assert ana.http.get(f"/items/{outside.id}/preview").status_code == 404
    assert "No preview" in ana.http.get(f"/items/{outside.id}").text
    ana.close()


def test_passwords_are_stored_as_argon2id_only(console: ConsoleEnv) -> None:
    db = sqlite3.connect(console.accounts.path)
    hashes = [r[0] for r in db.execute("SELECT password_hash FROM accounts")]
    db.close()
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
    assert PASSWORD.encode() not in console.accounts.path.read_bytes()


def test_over_https_the_session_cookie_is_secure_and_host_bound(console: ConsoleEnv, tmp_path: Path) -> None:
    pki = generate_demo_pki(tmp_path / "pki")
    running = start_console(console.gateway, console.accounts, MediaRoots([console.media]), "127.0.0.1:0",
                            HttpsFiles(cert_file=pki.server_cert, key_file=pki.server_key))
    try:
        assert running.url.startswith("https://127.0.0.1:")
        with httpx.Client(base_url=running.url, verify=ssl.create_default_context(cafile=str(pki.ca_cert))) as http:
            page = http.get("/login")
            token = CSRF.search(page.text)
            assert token
            r = http.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": token.group(1)})
            assert r.status_code == 303
            cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith("__Host-tw_session=")][0].lower()
            assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie and "domain" not in cookie
            assert http.get("/").status_code == 200
    finally:
        running.stop()


def test_an_item_shows_every_match_of_its_content_with_provenance(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    item = console.item_for("a-both-pdq")
    page = ana.http.get(f"/items/{item.id}").text
    for sid in ("a-both-pdq", "a-both-sha", "c-both"):
        assert f"<code>{sid}</code>" in page
    assert f"<td>{PDQ_DISTANCE}</td>" in page and "terrorism" in page and page.count("✔ verified") == 3
    cp = console.bob.log_view.trusted
    assert cp is not None and f"test.trustwire.invalid/log size {cp.size} root" in page
    assert ana.http.get("/items/9999").status_code == 404
    ana.close()


def test_feedback_and_bank_health(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    page = ana.http.get("/feedback").text
    assert "carol: false_positive" in page and "<strong>0</strong> entries behind" in page
    assert "<td>pdq</td><td>1</td>" in page
    ana.close()


def test_session_replay_after_logout_is_refused(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    stolen = dict(ana.http.cookies)
    assert ana.post("/logout").status_code == 303
    with httpx.Client(base_url=console.url, cookies=stolen) as replay:
        r = replay.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
    assert [a.action for a in console.accounts.audit_events("ana")][:2] == ["logout", "login"]


def test_stored_xss_in_a_decision_reason_is_escaped(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    item = console.item_for("a-spam")
    assert ana.post(f"/items/{item.id}/claim").status_code == 303
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    assert ana.post(f"/items/{item.id}/decide", decision="dismissed", reason=payload).status_code == 303
    for page in (ana.http.get(f"/items/{item.id}").text, ana.http.get("/history").text):
        assert payload not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert console.bob.queue.get(item.id).reason == payload  # type: ignore[union-attr]
    ana.close()


def test_bad_decisions_are_refused_without_side_effect(console: ConsoleEnv) -> None:
    ana = Reviewer(console, "ana")
    item = console.item_for("a-spam")
    assert ana.post(f"/items/{item.id}/claim").status_code == 303
    for data in ({"decision": "deleted", "reason": "x"}, {"decision": "actioned", "reason": "  "},
                 {"decision": "actioned", "reason": "x" * 2001}):
        r = ana.post(f"/items/{item.id}/decide", **data)
        assert r.status_code == 400 and r.headers["x-tw-reason"] == "invalid-input", data
    assert console.bob.queue.get(item.id).state is State.IN_REVIEW  # type: ignore[union-attr]
    unclaimed = console.item_for("a-csam")
    r = ana.post(f"/items/{unclaimed.id}/decide", decision="actioned", reason="never claimed")
    assert r.status_code == 400 and "must be claimed first" in r.text
    ana.close()


def test_preview_preferences_are_per_reviewer_and_recorded(console: ConsoleEnv) -> None:
    ana, ben = Reviewer(console, "ana"), Reviewer(console, "ben")
    item = console.item_for("a-csam")
    default = ana.http.get(f"/items/{item.id}/preview").content
    assert ana.post("/prefs", greyscale="on").status_code == 303  # blur off, greyscale kept
    assert console.accounts.get("ana").prefs == Prefs(blur=False, greyscale=True)
    assert ana.http.get(f"/items/{item.id}/preview").content != default
    assert ben.http.get(f"/items/{item.id}/preview").content == default  # ben keeps the defaults
    assert console.accounts.audit_events("ana")[0].action == "prefs"
    ana.close()
    ben.close()
