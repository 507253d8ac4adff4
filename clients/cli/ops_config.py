"""The operator's settings for every ``ops`` command: exchange address, operator key
TLS and origin, plus the duration syntax (``30m``, ``12h``, ``7d``) the commands share."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clients.cli.tls_options import tls_overrides
from clients.transport import DEFAULT_ORIGIN, ClientTls, client_tls
from exchange.core.errors import InvalidInput
from exchange.core.keyfiles import read_seed_file
from exchange.core.keys import Signer
from exchange.core.settings import load_settings

__all__ = ["OpsConfig", "duration_ms", "operator_credentials"]

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True, kw_only=True)
class OpsConfig:
    operator_key_file: Path
    exchange: str = "127.0.0.1:7443"
    origin: str = DEFAULT_ORIGIN
    """The exchange's log name (its ``name`` setting): every call is signed for it."""
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


def operator_credentials(
    args: argparse.Namespace, env: Mapping[str, str]
) -> tuple[str, Signer, ClientTls | None, str]:
    """Exchange address, operator key, TLS settings and exchange origin of an ``ops`` command."""
    overrides = {"exchange": args.exchange, "operator_key_file": args.operator_key_file, "origin": args.origin,
                 **tls_overrides(args)}
    config = load_settings(OpsConfig, file=args.config, env=env, overrides=overrides)
    signer = read_seed_file(config.operator_key_file, "operator key file")
    tls = client_tls(config.tls_ca_file, config.tls_cert_file, config.tls_key_file)
    return config.exchange, signer, tls, config.origin


def duration_ms(text: str) -> int:
    m = _DURATION.match(text)
    if not m:
        raise InvalidInput(f"durations look like 30m, 12h or 7d, got {text!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]
