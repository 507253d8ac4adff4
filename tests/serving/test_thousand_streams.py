"""1,000 concurrent follow-mode Subscribe streams from 100 members on one ``trustwire
serve`` process: one publish reaches every one of them. (bench/run.py reports the
p99 publish→delivery latency and the RSS per stream; this test asserts delivery only.)"""

from __future__ import annotations

from pathlib import Path

from bench.streams import StreamFleet
from tests.serving.conftest import GROUP, serve

MEMBERS = 100
STREAMS_PER_MEMBER = 10


def test_one_publish_reaches_a_thousand_follow_mode_streams(tmp_path: Path) -> None:
    members = {f"m{i:03d}": [GROUP] for i in range(MEMBERS)} | {"alice": [GROUP]}
    served = serve(tmp_path / "exchange", members)
    fleet = StreamFleet(served.exchange.target, served.exchange.name,
                        {m: s for m, s in served.signers.items() if m != "alice"}, STREAMS_PER_MEMBER)
    try:
        served.publish("alice", "0" * 32)  # every stream's first page holds it: the stream is open
        fleet.open(timeout_s=120)
        assert fleet.open_streams == MEMBERS * STREAMS_PER_MEMBER
        index = served.publish("alice", "5" * 32)
        delivered = fleet.wait_for(index, timeout_s=120)
        assert delivered == MEMBERS * STREAMS_PER_MEMBER
        assert fleet.errors == {}
    finally:
        fleet.close()
        served.close()
