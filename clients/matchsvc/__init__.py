"""The member's match service: HTTP/JSON and gRPC lookups for an upload pipeline.

It follows the exchange with full verification through the SDK
(:class:`clients.member.MemberClient`), keeps the bank's matchable signals in memory
(:mod:`clients.matchsvc.index`), applies the member's allow-list and policy, and
answers lookups by value, batches and uploaded bytes. See README.md, "The match service".
"""

from clients.matchsvc.allowlist import AllowEntry, AllowList
from clients.matchsvc.service import LookupResult, MatchService, MatchSettings, Readiness

__all__ = ["AllowEntry", "AllowList", "LookupResult", "MatchService", "MatchSettings", "Readiness"]
