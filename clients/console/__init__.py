"""The reviewer console: the member's moderation queue in a browser.

A thin web layer over the member SDK (``clients.member.MemberClient``): the queue by
priority with filters and paging, an item's matches with provenance and a verified
mark naming the checkpoint, wellness-first previews (greyscale and blurred on the
server, revealed only on request), claim / decide / release with owned claims,
history, feedback and bank health. Reviewers have accounts (argon2id), roles
(reviewer, lead, admin), server-side sessions, CSRF tokens and an audit trail.

    accounts = AccountStore("console.db")
    running = start_console(Gateway(client), accounts, MediaRoots(["uploads/"]))
    print(running.url)
"""

from clients.console.accounts import Account, AccountStore, Prefs, Role
from clients.console.gateway import Gateway
from clients.console.media import MediaRoots
from clients.console.server import ConsoleServer, HttpsFiles, start_console

__all__ = ["Account", "AccountStore", "ConsoleServer", "Gateway", "HttpsFiles", "MediaRoots", "Prefs", "Role", "start_console"]
