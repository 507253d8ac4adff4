"""A PKI made the way an operator makes one: the `openssl` CLI, a CA of its own, an
exchange certificate for 127.0.0.1 and localhost, one client certificate per
principal (CN and DNS SAN = the principal). Not the demo PKI of `trustwire demo`.

Files, in the layout the README's "first hour" uses (``$TW_PKI``): ``ca.pem``,
``exchange.pem`` + ``exchange-key.pem``, ``PRINCIPAL.pem`` + ``PRINCIPAL-key.pem``.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Pki", "openssl_pki"]

DAYS = "2"


@dataclass(frozen=True, slots=True)
class Pki:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}-key.pem"


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    assert exe, "the persona tests need the openssl CLI (apt-get install openssl)"
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (args, proc.stderr)


def _issue(d: Path, name: str, subject: str, extensions: str) -> None:
    """A key, a request and the CA's certificate for it, with these v3 extensions."""
    (d / f"{name}.ext").write_text(extensions)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{name}-key.pem", "-subj", subject, "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
             "-days", DAYS, "-sha256", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


def openssl_pki(directory: Path, principals: Sequence[str]) -> Pki:
    """A CA, the exchange's certificate and a client certificate per principal."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", DAYS, "-sha256",
             "-subj", "/O=Task Force Test/CN=Task Force Test CA",
             "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _issue(d, "exchange", "/O=Task Force Test/CN=localhost",
           "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
           "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for p in principals:
        _issue(d, p, f"/O=Task Force Test/CN={p}",
               "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
               f"extendedKeyUsage=clientAuth\nsubjectAltName=DNS:{p}\n")
    return Pki(d)
