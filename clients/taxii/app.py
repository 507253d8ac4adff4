"""A read-only TAXII 2.1 server over a member's verified bank (Starlette).

    GET /taxii2/                                             discovery
    GET /{root}/                                             API root
    GET /{root}/collections/                                 one per sharing group + "all"
    GET /{root}/collections/{id}/                            one collection
    GET /{root}/collections/{id}/objects/                    added_after, limit, next, match[id|type|version]
    GET /{root}/collections/{id}/objects/{object_id}/        one object (its latest version)
    GET /{root}/collections/{id}/objects/{object_id}/versions/
    GET /{root}/collections/{id}/manifest/

Every request needs HTTP Basic credentials (:mod:`clients.taxii.auth`); a user sees
only the collections of its groups. The bank keeps the latest version of each
signal, so each object has one version: a retraction replaces the indicator by its
revoked version. Paging: ``next`` is the ledger position of the last object
returned; ``added_after`` filters on when the exchange accepted the change.
"""

from __future__ import annotations

import json
import threading

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clients.bank import Bank
from clients.stix.feed import FeedObject, feed
from clients.stix.objects import Checkpoint, stix_id, ts
from clients.taxii.auth import TaxiiUser, authenticate

__all__ = ["TAXII_MEDIA_TYPE", "STIX_MEDIA_TYPE", "MAX_PAGE", "TaxiiSettings", "create_app"]

TAXII_MEDIA_TYPE = "application/taxii+json;version=2.1"
STIX_MEDIA_TYPE = "application/stix+json;version=2.1"
MAX_PAGE = 1000
ALL = "all"


@dataclass(frozen=True, slots=True, kw_only=True)
class TaxiiSettings:
    member_id: str
    api_root: str = "trustwire"
    title: str = "Trustwire"


class TaxiiError(Exception):
    def __init__(self, status: int, title: str, description: str = "") -> None:
        super().__init__(title)
        self.status, self.title, self.description = status, title, description


def _json(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data, sort_keys=True), status_code=status, media_type=TAXII_MEDIA_TYPE,
                    headers=dict(headers or {}))


def _error(exc: TaxiiError) -> Response:
    body = {"title": exc.title, "description": exc.description, "http_status": str(exc.status)}
    headers = {"WWW-Authenticate": 'Basic realm="trustwire-taxii"'} if exc.status == 401 else {}
    return _json(body, exc.status, headers)


def _stamp(ms: int) -> str:
    return ts(ms).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time_ms(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError as exc:
        raise TaxiiError(400, "bad added_after", f"not a timestamp: {text[:40]!r}") from exc


def collection_id(group: str | None) -> str:
    return stix_id("collection", group or "\x00all").split("--", 1)[1]


def create_app(
    bank: Bank,
    users: Mapping[str, TaxiiUser],
    settings: TaxiiSettings,
    checkpoint: Callable[[], Checkpoint | None] = lambda: None,
    member_groups: Callable[[], Iterable[str]] = tuple,
) -> Starlette:
    """The TAXII application over ``bank`` (read through one lock: the bank's connection
    is shared by Starlette's worker threads). Collections: everything, and one per
    sharing group of the member (``member_groups``) or of a banked signal."""
    lock = threading.Lock()
    root = settings.api_root

    def collections_for(user: TaxiiUser) -> dict[str, str | None]:
        with lock:
            groups = sorted(set(bank.groups()) | set(member_groups()))
        out: dict[str, str | None] = {}
        if user.may_read(None):
            out[collection_id(None)] = None
        for g in groups:
            if user.may_read(g):
                out[collection_id(g)] = g
        return out

    def describe(cid: str, group: str | None) -> dict[str, Any]:
        title = f"Everything {settings.member_id} may see" if group is None else f"Sharing group {group}"
        return {
            "id": cid, "title": title, "can_read": True, "can_write": False,
            "description": "Verified Trustwire signals, retractions (revoked) and opinions",
            "media_types": [STIX_MEDIA_TYPE],
        }

    def endpoint(fn: Callable[[Request, TaxiiUser], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            try:
                accept = request.headers.get("accept", "")
                if accept and not any(
                    a.strip().startswith(("application/taxii+json", "*/*", "application/*")) for a in accept.split(",")
                ):
                    raise TaxiiError(406, "not acceptable", f"this server speaks {TAXII_MEDIA_TYPE}")
                user = authenticate(request.headers.get("authorization"), users)
                if user is None:
                    raise TaxiiError(401, "authentication required", "HTTP Basic with a TAXII user and its token")
                return fn(request, user)
            except TaxiiError as exc:
                return _error(exc)

        return wrapped

    def collection_of(request: Request, user: TaxiiUser) -> str | None:
        if request.path_params["api_root"] != root:
            raise TaxiiError(404, "no such API root")
        cid = request.path_params["collection_id"]
        allowed = collections_for(user)
        if cid not in allowed:  # unknown and forbidden look the same
            raise TaxiiError(404, "no such collection", cid[:64])
        return allowed[cid]

    def page(request: Request, group: str | None) -> tuple[list[FeedObject], bool, str | None]:
        q = request.query_params
        try:
            limit = min(int(q.get("limit") or MAX_PAGE), MAX_PAGE)
            after = int(q["next"]) if q.get("next") else None
        except ValueError as exc:
            raise TaxiiError(400, "bad limit or next", str(exc)[:80]) from exc
        if limit < 1:
            raise TaxiiError(400, "bad limit", "limit must be at least 1")
        added_after = _parse_time_ms(q["added_after"]) if q.get("added_after") else None
        with lock:
            items = feed(bank, after=after, limit=limit + 1, group=group, added_after_ms=added_after,
                         checkpoint=checkpoint())
        more = len(items) > limit
        items = items[:limit]
        ids = set(q.getlist("match[id]")) if "match[id]" in q else None
        types = {t for v in q.getlist("match[type]") for t in v.split(",")} if "match[type]" in q else None
        chosen = [i for i in items if (ids is None or i.id in ids) and (types is None or i.obj["type"] in types)]
        return chosen, more, (str(items[-1].position) if more and items else None)

    def date_headers(items: list[FeedObject]) -> dict[str, str]:
        if not items:
            return {}
        added = sorted(i.date_added_ms for i in items)
        return {"X-TAXII-Date-Added-First": _stamp(added[0]), "X-TAXII-Date-Added-Last": _stamp(added[-1])}

    def find(group: str | None, object_id: str) -> FeedObject:
        after: int | None = None
        while True:  # a scan of the collection's feed: the bank is keyed by publisher and signal id
            with lock:
                items = feed(bank, after=after, limit=MAX_PAGE, group=group, checkpoint=checkpoint())
            for i in items:
                if i.id == object_id:
                    return i
            if len(items) < MAX_PAGE:
                raise TaxiiError(404, "no such object", object_id[:80])
            after = items[-1].position

    @endpoint
    def discovery(request: Request, user: TaxiiUser) -> Response:
        base = str(request.base_url).rstrip("/")
        return _json({"title": settings.title, "description": f"TAXII 2.1 over {settings.member_id}'s verified bank",
                      "default": f"{base}/{root}/", "api_roots": [f"{base}/{root}/"]})

    @endpoint
    def api_root(request: Request, user: TaxiiUser) -> Response:
        if request.path_params["api_root"] != root:
            raise TaxiiError(404, "no such API root")
        return _json({"title": f"{settings.title} ({settings.member_id})", "versions": [TAXII_MEDIA_TYPE],
                      "max_content_length": 0})

    @endpoint
    def collections(request: Request, user: TaxiiUser) -> Response:
        if request.path_params["api_root"] != root:
            raise TaxiiError(404, "no such API root")
        return _json({"collections": [describe(c, g) for c, g in collections_for(user).items()]})

    @endpoint
    def collection(request: Request, user: TaxiiUser) -> Response:
        group = collection_of(request, user)
        return _json(describe(request.path_params["collection_id"], group))

    @endpoint
    def objects(request: Request, user: TaxiiUser) -> Response:
        items, more, nxt = page(request, collection_of(request, user))
        body: dict[str, Any] = {"more": more, "objects": [json.loads(i.obj.serialize()) for i in items]}
        if nxt is not None:
            body["next"] = nxt
        return _json(body, headers=date_headers(items))

    @endpoint
    def manifest(request: Request, user: TaxiiUser) -> Response:
        items, more, nxt = page(request, collection_of(request, user))
        body: dict[str, Any] = {"more": more, "objects": [
            {"id": i.id, "date_added": _stamp(i.date_added_ms), "version": i.version, "media_type": STIX_MEDIA_TYPE}
            for i in items
        ]}
        if nxt is not None:
            body["next"] = nxt
        return _json(body, headers=date_headers(items))

    @endpoint
    def one_object(request: Request, user: TaxiiUser) -> Response:
        item = find(collection_of(request, user), request.path_params["object_id"])
        return _json({"more": False, "objects": [json.loads(item.obj.serialize())]}, headers=date_headers([item]))

    @endpoint
    def versions(request: Request, user: TaxiiUser) -> Response:
        item = find(collection_of(request, user), request.path_params["object_id"])
        return _json({"more": False, "versions": [item.version]}, headers=date_headers([item]))

    @endpoint
    def read_only(request: Request, user: TaxiiUser) -> Response:
        collection_of(request, user)
        raise TaxiiError(403, "read-only collection", "this server publishes the member's verified bank; it takes no writes")

    c = "/{api_root}/collections/{collection_id}"
    routes = [
        Route("/taxii2/", discovery),
        Route("/{api_root}/", api_root),
        Route("/{api_root}/collections/", collections),
        Route(f"{c}/", collection),
        Route(f"{c}/objects/", objects),
        Route(f"{c}/objects/", read_only, methods=["POST"]),
        Route(f"{c}/objects/{{object_id}}/", one_object),
        Route(f"{c}/objects/{{object_id}}/", read_only, methods=["DELETE"]),
        Route(f"{c}/objects/{{object_id}}/versions/", versions),
        Route(f"{c}/manifest/", manifest),
    ]
    return Starlette(routes=routes)


