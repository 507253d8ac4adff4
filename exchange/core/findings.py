"""How serious a finding is: what a verifier reports is either expected or corruption.

An *expected* finding is the protocol working as designed — an entry signed by a key
after the point its later ``KeyRevoked`` says it was compromised, which every verifier
quarantines. Everything else (a bad signature, a record out of place, a fork, a failed
proof, a key directory that disagrees) is *corruption*. Commands list both and fail
(exit 8, ``ExitCode.SECURITY``) only on corruption.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EXPECTED_REASONS", "Severity", "severity_of"]


class Severity(StrEnum):
    EXPECTED = "expected"
    CORRUPTION = "corruption"


EXPECTED_REASONS = frozenset({"compromised-key"})
"""Finding reasons that are the protocol working as designed."""


def severity_of(reason: str) -> Severity:
    """The severity of a finding or quarantine ``reason`` (the stable reason word)."""
    return Severity.EXPECTED if reason in EXPECTED_REASONS else Severity.CORRUPTION
