"""A reviewer console over bob's state, filled from a real exchange: alice publishes
signals about bob's uploads, bob syncs and matches them, carol gives feedback on
bob's own signal. The console serves bob's queue on 127.0.0.1:0."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from clients.console import AccountStore, ConsoleServer, Gateway, MediaRoots, start_console
from clients.media import hash_file
from clients.member import MemberClient
from clients.policy import Policy
from clients.queue import QueueItem
from tests.conftest import GROUP_ALL, TaskForce, accepted, start_taskforce

PASSWORD = "correct horse battery staple"
ACCOUNTS = {"ana": "reviewer", "ben": "reviewer", "lea": "lead", "adm": "admin"}
POLICY = """
default = "enqueue"
default_priority = 2

[[rule]]
name = "csam"
labels_any = ["csam"]
action = "enqueue"
priority = 0

[feedback]
publish_on_decision = true
"""


PDQ_DISTANCE = 6


def near(pdq: str | None, bits: int) -> str:
    """A PDQ hash ``bits`` away from ``pdq``."""
    assert pdq is not None
    return f"{int(pdq, 16) ^ ((1 << bits) - 1):064x}"


def make_image(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    img = (rng.random((24, 32, 3)) * 255).astype("uint8")
    Image.fromarray(img).resize((320, 240), Image.NEAREST).save(path)
    return path


@dataclass
class ConsoleEnv:
    tf: TaskForce
    bob: MemberClient
    accounts: AccountStore
    gateway: Gateway
    running: ConsoleServer
    media: Path
    outside: Path

    @property
    def url(self) -> str:
        return self.running.url

    def items(self) -> list[QueueItem]:
        assert self.bob.queue is not None
        return self.bob.queue.items()

    def item_for(self, signal_id: str) -> QueueItem:
        """The item whose evidence holds this signal (one item per piece of content)."""
        (item,) = [i for i in self.items() if signal_id in {i.signal_id, *(e.signal_id for e in i.evidence)}]
        return item


@pytest.fixture
def console(tmp_path: Path) -> Iterator[ConsoleEnv]:
    tf = start_taskforce(tmp_path / "exchange")
    media = tmp_path / "uploads"
    media.mkdir()
    csam, spam, both = (make_image(media / f"upload-{n}.png", n) for n in (1, 2, 3))
    outside = make_image(tmp_path / "elsewhere.png", 4)  # hashed by bob, but not under a media root
    h = {p.name: hash_file(p) for p in (csam, spam, both, outside)}
    alice = tf.client("alice", state=True)
    accepted(alice.publish([
        alice.signal("md5", h[csam.name].md5, groups=[GROUP_ALL], signal_id="a-csam", labels=["csam"],
                     confidence=90, severity="high"),
        alice.signal("md5", h[spam.name].md5, groups=[GROUP_ALL], signal_id="a-spam", labels=["spam"]),
        alice.signal("sha256", h[both.name].sha256, groups=[GROUP_ALL], signal_id="a-both-sha", labels=["spam"]),
        alice.signal("pdq", near(h[both.name].pdq, PDQ_DISTANCE), groups=[GROUP_ALL], signal_id="a-both-pdq",
                     labels=["spam"]),
        alice.signal("md5", h[outside.name].md5, groups=[GROUP_ALL], signal_id="a-outside", labels=["spam"]),
    ]))
    carol = tf.client("carol", state=True)
    accepted(carol.publish([carol.signal("md5", h[both.name].md5, groups=[GROUP_ALL], signal_id="c-both",
                                         labels=["terrorism"], confidence=70)]))
    bob = tf.client("bob", state=True, policy=Policy.from_toml(POLICY))
    accepted(bob.publish([bob.signal("md5", "0" * 31 + "1", groups=[GROUP_ALL], signal_id="b-own", labels=["spam"])]))
    accepted(carol.publish([carol.opinion("bob", "b-own", "false_positive")]))
    bob.sync()
    bob.match_files([media, outside])
    accounts = AccountStore(tmp_path / "console.db")
    for name, role in ACCOUNTS.items():
        accounts.create(name, PASSWORD, role)
    gateway = Gateway(bob)
    gateway.sync_now()
    running = start_console(gateway, accounts, MediaRoots([media]))
    env = ConsoleEnv(tf=tf, bob=bob, accounts=accounts, gateway=gateway, running=running, media=media, outside=outside)
    try:
        yield env
    finally:
        running.stop()
        gateway.close()
        accounts.close()
        tf.close()


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Reviewer:
    """An HTTP session of one reviewer against the console (cookies kept)."""

    def __init__(self, env: ConsoleEnv, name: str, password: str = PASSWORD) -> None:
        self.http = httpx.Client(base_url=env.url, follow_redirects=False, timeout=30)
        self.login_response = self.login(name, password)

    def login(self, name: str, password: str) -> httpx.Response:
        page = self.http.get("/login")
        token = CSRF.search(page.text)
        assert token, page.text
        return self.http.post("/login", data={"name": name, "password": password, "csrf": token.group(1)})

    def csrf(self) -> str:
        m = CSRF.search(self.http.get("/").text)
        assert m
        return m.group(1)

    def post(self, path: str, csrf: str | None = "auto", **data: str) -> httpx.Response:
        if csrf == "auto":
            csrf = self.csrf()
        return self.http.post(path, data={**data, **({"csrf": csrf} if csrf is not None else {})})

    def close(self) -> None:
        self.http.close()
