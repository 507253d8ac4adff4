"""A member command's client: settings (file, environment, flags) to an open
:class:`clients.member.MemberClient`. Shared by ``trustwire member`` and the
reviewer console's commands."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from clients.config import MemberConfig
from clients.member import MemberClient
from clients.policy import Policy
from clients.cli.tls_options import tls_overrides
from clients.transport import client_tls
from exchange.core.errors import ConfigError
from exchange.core.keyfiles import public_key_from_hex, read_seed_file
from exchange.core.keys import Signer
from exchange.core.settings import load_settings

__all__ = ["load_config", "open_client", "read_seed", "stateful_client"]


def load_config(args: argparse.Namespace, env: Mapping[str, str]) -> MemberConfig:
    overrides = {
        "exchange": args.exchange,
        "member_id": args.member_id,
        "key_file": args.key_file,
        "operator_public_key": args.operator_public_key,
        "log_key": args.log_key,
        "state": args.state,
        "policy": args.policy,
        **tls_overrides(args),
    }
    return load_settings(MemberConfig, file=args.config, env=env, overrides=overrides)


def read_seed(path: Path) -> Signer:
    return read_seed_file(path, "key file", hint=" (create one with `trustwire member keygen`)")


@contextmanager
def stateful_client(args: argparse.Namespace, env: Mapping[str, str]) -> Iterator[MemberClient]:
    """A client whose state file (bank, queue, cursor) is open, for commands that need it."""
    with open_client(load_config(args, env)) as client:
        if client.queue is None or client.bank is None:
            raise ConfigError("this command needs a state file (--state or `state` in the config)")
        yield client


def open_client(config: MemberConfig) -> MemberClient:
    operator_key = public_key_from_hex(config.operator_public_key)
    policy = Policy.load(config.policy) if config.policy else None
    tls = client_tls(config.tls_ca_file, config.tls_cert_file, config.tls_key_file)
    return MemberClient(
        config.exchange,
        member_id=config.member_id,
        signer=read_seed(config.key_file),
        operator_key=operator_key,
        log_key=config.log_key,
        witnesses=config.witnesses,
        witness_quorum=config.witness_quorum,
        state=config.state,
        policy=policy,
        tls=tls,
    )
