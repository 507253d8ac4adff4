"""One probe of bench_ab.py, run with the tree under test first on sys.path: publish,
sync and match_files rates as one JSON line. Uses only APIs both trees share."""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

from clients.member import MemberClient
from clients.operator import OperatorClient
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.server.config import ServerConfig
from exchange.server.grpc_server import build_server

GROUP = "everyone"


def main(entries: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tw-probe-") as tmp:
        work = Path(tmp)
        operator, log = Signer.from_seed(b"\x0a" * 32), Signer.from_seed(b"\x0b" * 32)
        members = {"pub": Signer.from_seed(b"\x14" * 32), "sub": Signer.from_seed(b"\x15" * 32)}
        (work / "log.key").write_text(log.seed.hex())
        server = build_server(ServerConfig(
            operator_public_key=operator.public_key.hex(), log_key_file=work / "log.key", listen="127.0.0.1:0",
            ledger_path=work / "ledger.db", name="ab.trustwire.invalid/log", metrics_listen="off",
            verify_workers=1, publish_rate=1e9, publish_burst=10**9,
        ))
        try:
            op = OperatorClient(server.target, operator)
            events = [op.create_group(GROUP, "Everyone", "amber")]
            for name, signer in members.items():
                events += [op.enrol(name, name, [GROUP]), op.add_key(name, signer.public_key, 1_700_000_000_000)]
            assert all(isinstance(o, Receipt) for o in op.publish(events))
            op.close()

            def client(name: str, state: Path | None = None) -> MemberClient:
                return MemberClient(server.target, member_id=name, signer=members[name],
                                    operator_key=operator.public_key,
                                    log_key=server.checkpoints.verifier_key, state=state)

            files = []
            for i in range(200):
                f = work / f"f{i}.bin"
                f.write_bytes(hashlib.sha256(str(i).encode()).digest() * 64)
                files.append(f)
            pub = client("pub")
            values = [hashlib.md5(f.read_bytes(), usedforsecurity=False).hexdigest() for f in files]
            values += [f"{i:032x}" for i in range(entries - len(values))]
            signed = [pub.sign(pub.signal("md5", v, groups=[GROUP], signal_id=f"s{i}", created_at_ms=1_800_000_000_000))
                      for i, v in enumerate(values)]
            start = time.perf_counter()
            outcomes = pub.publish_envelopes(signed)
            publish = len(signed) / (time.perf_counter() - start)
            assert all(isinstance(o, Receipt) for o in outcomes)
            pub.close()

            sub = client("sub", state=work / "sub.db")
            start = time.perf_counter()
            verified = sub.sync().verified
            sync = verified / (time.perf_counter() - start)
            start = time.perf_counter()
            results = sub.match_files(files)
            match = len(files) / (time.perf_counter() - start)
            assert sum(len(r.matches) for r in results) == len(files)
            sub.close()
        finally:
            server.stop(grace=0.2)
    print(json.dumps({"publish": publish, "sync": sync, "match_files": match}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
