"""The Trustwire member SDK: publish, verify, bank, match, queue."""

from clients.bank import Bank, BankOpinion, BankSignal, Match
from clients.member import FileMatches, MemberClient, SyncReport
from clients.policy import Action, Decision, Policy
from clients.queue import ModerationQueue, QueueItem, State
from clients.transport import ClientTls
from exchange.core.errors import TrustwireError
from exchange.core.keys import Signer
from exchange.core.records import Receipt
from exchange.core.verify import VerifiedEntry

__all__ = [
    "Action",
    "Bank",
    "BankOpinion",
    "BankSignal",
    "ClientTls",
    "Decision",
    "FileMatches",
    "Match",
    "MemberClient",
    "ModerationQueue",
    "Policy",
    "QueueItem",
    "Receipt",
    "Signer",
    "State",
    "SyncReport",
    "TrustwireError",
    "VerifiedEntry",
]
