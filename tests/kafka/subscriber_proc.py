"""A member's subscriber as its own process: ``MemberClient.sync`` in follow mode into
a state file (bank + moderation queue), until the queue holds ``--expect`` items.

Prints ``cursor N queued M`` after every committed page (the test kills it -9 at some
point and starts it again on the same state file).

    python -m tests.kafka.subscriber_proc TARGET STATE CONTENT_DIR EXPECT OPERATOR_KEY_HEX LOG_VKEY
"""

from __future__ import annotations

import sys
import time

from clients.member import MemberClient
from clients.policy import Policy
from exchange.core.errors import TrustwireError
from tests.conftest import insecure_signer

ENQUEUE_ALL = Policy.from_toml('default = "enqueue"\ndefault_priority = 1\n')


def main(argv: list[str]) -> int:
    target, state, content, expect, operator_hex, vkey = argv
    wanted = int(expect)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        client = MemberClient(
            target, member_id="bob", signer=insecure_signer("bob"), operator_key=bytes.fromhex(operator_hex),
            log_key=vkey, state=state, policy=ENQUEUE_ALL,
        )
        try:
            assert client.queue is not None and client.store is not None
            client.match_files([content])  # the member's own content (idempotent)
            queue, store = client.queue, client.store

            def done() -> bool:
                queued = len(queue.items(limit=100_000))
                print(f"cursor {store.cursor} queued {queued}", flush=True)
                return queued >= wanted

            if done():
                return 0
            client.sync(follow=True, stop=done)
            if done():
                return 0
        except TrustwireError as exc:
            print(f"retrying after {exc.status}: {exc.message}", flush=True)
            time.sleep(0.2)
        finally:
            client.close()
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
