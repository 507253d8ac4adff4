"""The one set of transport options every client command takes.

``--tls-ca-file`` (the CA of the exchange's certificate; turns TLS on),
``--tls-cert-file`` and ``--tls-key-file`` (this principal's certificate and key, for
mutual TLS). Each is also a config-file key (``tls_ca_file`` …) and an environment
variable (``TRUSTWIRE_TLS_CA_FILE`` …); flags win over the environment, which wins
over the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_tls_arguments", "tls_overrides"]


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the three ``--tls-*`` options to a command."""
    g = parser.add_argument_group("transport (also tls_* in --config, TRUSTWIRE_TLS_* in the environment)")
    g.add_argument("--tls-ca-file", type=Path, metavar="PEM",
                   help="CA certificate(s) of the exchange's certificate; turns TLS on")
    g.add_argument("--tls-cert-file", type=Path, metavar="PEM",
                   help="your client certificate, for an exchange that requires mutual TLS")
    g.add_argument("--tls-key-file", type=Path, metavar="PEM", help="the unencrypted private key of --tls-cert-file")


def tls_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The flag layer of the ``tls_*`` settings (None: not given on the command line)."""
    return {name: getattr(args, name, None) for name in ("tls_ca_file", "tls_cert_file", "tls_key_file")}
