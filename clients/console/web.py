"""The reviewer console's web app (Starlette + Jinja2, htmx-boosted forms).

Every page needs a session (``/login`` opens one); every POST needs the session's
CSRF token and, when the browser sends one, a same-origin ``Origin``. Pages work
without JavaScript; htmx (vendored, no CDN) only boosts links and forms, and
``console.js`` adds keyboard shortcuts. Errors render a page with the HTTP status
of the error class and an ``X-TW-Reason`` header naming its reason. Responses carry
a strict CSP, ``no-store`` and ``nosniff``: previews are sensitive.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clients.console.accounts import AccountStore, Prefs, Role, Session
from clients.console.gateway import Gateway
from clients.console.media import MediaRoots, render_preview
from clients.queue import DECISIONS, OPEN_STATES, QueueFilter, State
from exchange.core.errors import (
    AuthenticationError,
    ClaimedByOther,
    InvalidInput,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    TrustwireError,
)

__all__ = ["build_app"]

HERE = Path(__file__).parent
PAGE_SIZE = 25
AGES_MS = {"": (None, None), "lt1h": (None, 3_600_000), "lt24h": (None, 86_400_000),
           "gt1h": (3_600_000, None), "gt24h": (86_400_000, None)}
_STATUS = ((ClaimedByOther, 409), (AuthenticationError, 401), (PermissionDenied, 403), (NotFound, 404),
           (ResourceExhausted, 429), (InvalidInput, 400))
_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
     b" connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" makes browsers send Origin: null
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
]


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _HEADERS
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def _when(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Console:
    """Routes over one gateway (the SDK) and one account store."""

    def __init__(self, gateway: Gateway, accounts: AccountStore, media: MediaRoots, secure_cookies: bool) -> None:
        self.gw, self.accounts, self.media = gateway, accounts, media
        self.cookie = "__Host-tw_session" if secure_cookies else "tw_session"
        self.secure = secure_cookies
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        self.templates.env.filters["when"] = _when

    # -- plumbing ----------------------------------------------------------------------

    def page(self, request: Request, name: str, session: Session | None, status: int = 200, **ctx: Any) -> Response:
        return self.templates.TemplateResponse(
            request, name, {"session": session, "Role": Role, **ctx}, status_code=status
        )

    def error(self, request: Request, session: Session | None, exc: TrustwireError) -> Response:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        r = self.page(request, "error.html", session, status=status, message=exc.message, reason=exc.reason)
        r.headers["x-tw-reason"] = exc.reason
        return r

    def set_cookie(self, r: Response, name: str, value: str) -> None:
        r.set_cookie(name, value, httponly=True, samesite="strict", secure=self.secure, path="/")

    def _same_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        expected = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != expected:
            raise PermissionDenied("cross-origin request refused")

    def guard(
        self, handler: Callable[[Request, Session], Awaitable[Response]], role: Role = Role.REVIEWER
    ) -> Callable[[Request], Awaitable[Response]]:
        """A handler that needs a live session with ``role``, and a CSRF token on POST."""

        async def run(request: Request) -> Response:
            session = self.accounts.session(request.cookies.get(self.cookie))
            if session is None:
                if request.method == "GET":
                    return RedirectResponse("/login", status_code=303)
                return self.error(request, None, AuthenticationError("your session has ended: log in again"))
            try:
                if request.method == "POST":
                    self._same_origin(request)
                    form = await request.form()
                    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
                        raise PermissionDenied("missing or wrong CSRF token: reload the page")
                if not session.account.role.at_least(role):
                    raise PermissionDenied(f"this needs the {role.value} role")
                return await handler(request, session)
            except TrustwireError as exc:
                return self.error(request, session, exc)

        return run

    # -- login -------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        r = self.page(request, "login.html", None, login_csrf=token)
        self.set_cookie(r, "tw_login", token)
        return r

    async def login(self, request: Request) -> Response:
        form = await request.form()
        try:
            self._same_origin(request)
            cookie = request.cookies.get("tw_login", "")
            if not cookie or not hmac.compare_digest(str(form.get("csrf", "")), cookie):
                raise PermissionDenied("missing or wrong CSRF token: reload the login page")
            name, password = str(form.get("name", "")), str(form.get("password", ""))
            token, _ = await run_in_threadpool(self.accounts.login, name, password)
        except TrustwireError as exc:
            return self.error(request, None, exc)
        r = RedirectResponse("/", status_code=303)
        self.set_cookie(r, self.cookie, token)
        r.delete_cookie("tw_login", path="/")
        return r

    async def logout(self, request: Request, session: Session) -> Response:
        self.accounts.logout(session)
        r = RedirectResponse("/login", status_code=303)
        r.delete_cookie(self.cookie, path="/", secure=self.secure, httponly=True, samesite="strict")
        return r

    # -- queue and items ---------------------------------------------------------------

    async def queue(self, request: Request, session: Session) -> Response:
        p = request.query_params
        state = p.get("state", "open")
        states: tuple[State, ...]
        if state == "open":
            states = (*OPEN_STATES, State.ESCALATED)
        elif state == "all":
            states = ()
        elif state in {s.value for s in State}:
            states = (State(state),)
        else:
            raise InvalidInput(f"unknown state filter {state!r}")
        min_age, max_age = AGES_MS.get(p.get("age", ""), (None, None))
        where = QueueFilter(
            states=states, type=p.get("type") or None, label=p.get("label") or None,
            publisher=p.get("publisher") or None, group=p.get("group") or None,
            min_age_ms=min_age, max_age_ms=max_age,
        )
        try:
            offset = max(0, int(p.get("offset", "0")))
        except ValueError as exc:
            raise InvalidInput("offset must be a number") from exc
        page, facets = await self.gw.call(self.gw.queue_page, where, offset, PAGE_SIZE)
        args = {k: v for k, v in p.items() if k != "offset" and v}
        return self.page(request, "queue.html", session, page=page, facets=facets, filters=p, args=args,
                         state=state, ages=AGES_MS)

    async def item(self, request: Request, session: Session) -> Response:
        item_id = int(request.path_params["item_id"])
        view = await self.gw.call(self.gw.item_view, item_id)
        has_media = self.media.resolve(view.item.content_ref) is not None
        return self.page(request, "item.html", session, view=view, item=view.item, has_media=has_media,
                         revealed=item_id in session.revealed, decisions=[d.value for d in DECISIONS], State=State)

    async def preview(self, request: Request, session: Session) -> Response:
        item_id = int(request.path_params["item_id"])
        view = await self.gw.call(self.gw.item_view, item_id)
        path = self.media.resolve(view.item.content_ref)
        clear = request.query_params.get("clear") == "1"
        if clear and item_id not in session.revealed:
            raise PermissionDenied("reveal the preview first")
        prefs = session.account.prefs
        png = None if path is None else render_preview(
            path, blur=prefs.blur and not clear, greyscale=prefs.greyscale and not clear
        )
        if png is None:
            raise NotFound(f"queue item {item_id} has no previewable image")
        return Response(png, media_type="image/png")

    async def reveal(self, request: Request, session: Session) -> Response:
        item_id = int(request.path_params["item_id"])
        await self.gw.call(self.gw.item_view, item_id)  # 404 for an unknown item
        self.accounts.grant_reveal(session, item_id)
        return RedirectResponse(f"/items/{item_id}#preview", status_code=303)

    async def claim(self, request: Request, session: Session) -> Response:
        item_id = int(request.path_params["item_id"])
        view = await self.gw.call(self.gw.item_view, item_id)
        if view.item.state is State.ESCALATED and not session.account.role.at_least(Role.LEAD):
            raise PermissionDenied("escalated items are claimed by a lead")
        await self.gw.call(self.gw.claim, item_id, session.account.name)
        self.accounts.audit(session.account.name, "claim", f"item {item_id}")
        return RedirectResponse(f"/items/{item_id}", status_code=303)

    async def release(self, request: Request, session: Session) -> Response:
        item_id = int(request.path_params["item_id"])
        force = (await request.form()).get("force") == "1"
        if force and not session.account.role.at_least(Role.LEAD):
            raise PermissionDenied("taking back another reviewer's claim needs the lead role")
        await self.gw.call(self.gw.release, item_id, session.account.name, force)
        self.accounts.audit(session.account.name, "release" + (" (forced)" if force else ""), f"item {item_id}")
        return RedirectResponse(f"/items/{item_id}", status_code=303)

    async def decide(self, request: Request, session: Session) -> Response:
        item_id = int(request.path_params["item_id"])
        form = await request.form()
        decision = str(form.get("decision", ""))
        reason = str(form.get("reason", "")).strip()
        if decision not in {d.value for d in DECISIONS}:
            raise InvalidInput("choose a decision: actioned, dismissed or escalated")
        if not reason or len(reason) > 2000:
            raise InvalidInput("a decision needs a reason (up to 2000 characters)")
        await self.gw.call(self.gw.decide, item_id, session.account.name, State(decision), reason)
        self.accounts.audit(session.account.name, "decide", f"item {item_id}", f"{decision}: {reason}")
        return RedirectResponse(f"/items/{item_id}", status_code=303)

    # -- history, feedback, prefs, accounts --------------------------------------------

    async def history(self, request: Request, session: Session) -> Response:
        lead = session.account.role.at_least(Role.LEAD)
        who = request.query_params.get("reviewer") or None
        if not lead:
            if who not in (None, session.account.name):
                raise PermissionDenied("reviewers see their own history; leads see everyone's")
            who = session.account.name
        events = await self.gw.call(self.gw.events, who, 0, 200)
        audit = self.accounts.audit_events(who, 0, 200)
        return self.page(request, "history.html", session, events=events, audit=audit, who=who, lead=lead)

    async def feedback(self, request: Request, session: Session) -> Response:
        report = await self.gw.call(self.gw.feedback)
        published = await self.gw.call(self.gw.opinions_published)
        health = await self.gw.call(self.gw.health)
        return self.page(request, "feedback.html", session, report=report, published=published, health=health)

    async def sync(self, request: Request, session: Session) -> Response:
        await self.gw.call(self.gw.sync_now)
        self.accounts.audit(session.account.name, "sync")
        return RedirectResponse("/feedback", status_code=303)

    async def prefs_form(self, request: Request, session: Session) -> Response:
        return self.page(request, "prefs.html", session)

    async def prefs(self, request: Request, session: Session) -> Response:
        form = await request.form()
        self.accounts.set_prefs(
            session.account.name, Prefs(blur=form.get("blur") == "on", greyscale=form.get("greyscale") == "on")
        )
        return RedirectResponse("/prefs", status_code=303)

    async def account_list(self, request: Request, session: Session) -> Response:
        return self.page(request, "accounts.html", session, accounts=self.accounts.all())

    async def account_disable(self, request: Request, session: Session) -> Response:
        form = await request.form()
        name = str(form.get("name", ""))
        if name == session.account.name:
            raise InvalidInput("an admin cannot disable their own account here")
        self.accounts.set_disabled(name, form.get("disabled") == "1", actor=session.account.name)
        return RedirectResponse("/accounts", status_code=303)


def build_app(gateway: Gateway, accounts: AccountStore, media: MediaRoots, *, secure_cookies: bool) -> ASGIApp:
    """The console as an ASGI app; ``secure_cookies`` when it is served over HTTPS."""
    c = Console(gateway, accounts, media, secure_cookies)
    g, lead, admin = c.guard, Role.LEAD, Role.ADMIN
    routes = [
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
        Route("/login", c.login_form, methods=["GET"]),
        Route("/login", c.login, methods=["POST"]),
        Route("/logout", g(c.logout), methods=["POST"]),
        Route("/", g(c.queue), methods=["GET"]),
        Route("/items/{item_id:int}", g(c.item), methods=["GET"]),
        Route("/items/{item_id:int}/preview", g(c.preview), methods=["GET"]),
        Route("/items/{item_id:int}/reveal", g(c.reveal), methods=["POST"]),
        Route("/items/{item_id:int}/claim", g(c.claim), methods=["POST"]),
        Route("/items/{item_id:int}/release", g(c.release), methods=["POST"]),
        Route("/items/{item_id:int}/decide", g(c.decide), methods=["POST"]),
        Route("/history", g(c.history), methods=["GET"]),
        Route("/feedback", g(c.feedback), methods=["GET"]),
        Route("/sync", g(c.sync, lead), methods=["POST"]),
        Route("/prefs", g(c.prefs_form), methods=["GET"]),
        Route("/prefs", g(c.prefs), methods=["POST"]),
        Route("/accounts", g(c.account_list, admin), methods=["GET"]),
        Route("/accounts/disable", g(c.account_disable, admin), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return _SecurityHeaders(Starlette(routes=routes))
