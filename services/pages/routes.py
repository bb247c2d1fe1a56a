"""The institution pages: `/` (sign-in, or the admin's list), `/institutions/{org_code}` and its receipts.

Errors are pages here, not the API's JSON: `PageRoute` turns every `ApiError` a page raises into
an HTML page with the same status (403 for another institution's page or receipt, 404 for an
unknown institution), and a missing or ended session into a redirect to the sign-in form. The
pages are left out of the OpenAPI document: they are for people, `/v1/...` is for programs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import HTMLResponse, RedirectResponse, Response

from services.aggregator.receipts import receipt_for
from services.aggregator.routes import check_thresholds, parse_month
from services.aggregator.settings import AggregatorSettings
from services.bulletin.render import KIND_NAMES
from services.pages.month import list_institutions, load_institution_month
from services.pages.render import render
from services.pages.sessions import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    SIGNIN_COOKIE_MAX_AGE_S,
    Session,
    Sessions,
    new_form_token,
    same_token,
)
from services.pages.view import institution_html
from services.quality.scorecard import scorecard
from services.storage.receipts import Receipt
from services.streams import STREAMS
from services.web.auth import Authenticator
from services.web.errors import (
    ApiError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    UnauthenticatedError,
    UnsupportedMediaError,
)

log = logging.getLogger(__name__)

_FORM_BYTES = 8192
"""Largest sign-in or sign-out body read: a token and a form token are far below it."""
_EVENT_ID_CHARS = 128
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
# Nothing may load from anywhere, not even from here: the page is one HTML document with its own CSS.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
_ERROR_TITLES = {
    400: "请求有误 Bad request",
    401: "未登录 Not signed in",
    403: "无权查看 Forbidden",
    404: "未找到 Not found",
    415: "请求有误 Bad request",
    422: "请求有误 Invalid request",
}


class SignInRequired(Exception):
    """No live session: the browser is sent to the sign-in form."""


class PageRoute(APIRoute):
    """A route whose errors are HTML pages (with the error's status) and whose sign-in is a redirect."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return RedirectResponse("/", status_code=303, headers=_HEADERS)
            except ApiError as exc:
                title = _ERROR_TITLES.get(exc.status, "出错了 Error")
                body = render("message.html.j2", title=title, text=exc.detail, session=None)
                return _html(body, exc.status)

        return page_handler


router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _settings(request: Request) -> AggregatorSettings:
    settings: AggregatorSettings = request.app.state.settings
    return settings


def _secure(request: Request) -> bool:
    """Whether the browser reached us over TLS: the scheme, or a trusted proxy's X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return _settings(request).page_trust_forwarded_proto and forwarded == "https"


def _set_cookie(response: Response, request: Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=_secure(request), httponly=True, samesite="strict"
    )


def _drop_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", secure=_secure(request), httponly=True, samesite="strict")


def _now() -> datetime:
    return datetime.now(UTC)


async def _session(request: Request) -> Session | None:
    sessions: Sessions = request.app.state.sessions
    async with request.app.state.pool.acquire() as conn:
        return await sessions.find(conn, request.cookies.get(SESSION_COOKIE), _now())


async def _signed_in(session: Annotated[Session | None, Depends(_session)]) -> Session:
    if session is None:
        raise SignInRequired
    return session


MaybeSession = Annotated[Session | None, Depends(_session)]
SignedIn = Annotated[Session, Depends(_signed_in)]


async def _form(request: Request) -> Mapping[str, str]:
    """A url-encoded form body (the last value of each field)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise UnsupportedMediaError("a form must be sent as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_BYTES:
            raise InvalidRequestError(f"a form of more than {_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=8, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequestError("the form cannot be read") from exc
    return {name: values[-1] for name, values in fields.items()}


def _month(request: Request, text: str | None) -> date:
    """The month asked for, or the current month in the platform time zone."""
    if text:
        return parse_month(text)
    return datetime.now(_settings(request).zone).date().replace(day=1)


def _signin_page(request: Request, problem: str | None, status: int) -> Response:
    form_token = new_form_token()
    hours = _settings(request).page_session_hours
    body = render(
        "signin.html.j2",
        title="登录 Sign in",
        session=None,
        problem=problem,
        form_token=form_token,
        hours=f"{hours:g}",
    )
    response = _html(body, status)
    _set_cookie(response, request, SIGNIN_COOKIE, form_token, SIGNIN_COOKIE_MAX_AGE_S)
    return response


@router.get("/")
async def start_page(request: Request, session: MaybeSession, month: str | None = None) -> Response:
    """The sign-in form; signed in, an institution's own page, or the admin's list of institutions."""
    if session is None:
        return _signin_page(request, None, 200)
    first = _month(request, month)
    if not session.principal.is_admin:
        return RedirectResponse(_page_url(str(session.principal.org_code), first), status_code=303, headers=_HEADERS)
    settings = _settings(request)
    async with request.app.state.pool.acquire() as conn:
        institutions = await list_institutions(conn)
        # The admin's scorecard is `GET /v1/reports/scorecard` for the admin token: every institution.
        card = await scorecard(conn, first, None, zone=settings.zone, thresholds=check_thresholds(request))
    body = render(
        "admin.html.j2",
        title="所有机构 All institutions",
        session=session,
        institutions=institutions,
        card=card,
        kind_names=KIND_NAMES,
        month_text=f"{first:%Y-%m}",
        month_label=f"{first.year}年{first.month}月",
    )
    return _html(body)


@router.post("/signin")
async def sign_in(request: Request) -> Response:
    """Check the token once and open a session; the token itself is not kept anywhere."""
    form = await _form(request)
    if not same_token(form.get("csrf_token"), request.cookies.get(SIGNIN_COOKIE)):
        return _signin_page(request, "登录表单已过期，请重新输入。The form expired; please enter the token again.", 403)
    token = form.get("token", "").strip()
    authenticator: Authenticator = request.app.state.authenticator
    try:
        principal = authenticator.authenticate_token(token) if token else None
    except UnauthenticatedError:
        principal = None
    if principal is None:
        # Never the token itself, not even part of it: a mistyped token is nearly the real one.
        log.info("page sign-in refused: unknown or revoked token")
        return _signin_page(request, "令牌无效或已吊销。Unknown or revoked token.", 401)
    sessions: Sessions = request.app.state.sessions
    async with request.app.state.pool.acquire() as conn:
        session_id, _ = await sessions.open(conn, principal, token, _now())
    log.info("page sign-in", extra={"actor": principal.actor})
    response = RedirectResponse("/", status_code=303, headers=_HEADERS)
    _set_cookie(response, request, SESSION_COOKIE, session_id, int(sessions.lifetime.total_seconds()))
    _drop_cookie(response, request, SIGNIN_COOKIE)
    return response


@router.post("/signout")
async def sign_out(request: Request, session: MaybeSession) -> Response:
    """End the session on the server and drop its cookie (the form must carry the session's form token)."""
    form = await _form(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if session is not None and cookie:
        if not same_token(form.get("csrf_token"), session.csrf_token):
            raise ForbiddenError("the sign-out form does not carry this session's form token")
        sessions: Sessions = request.app.state.sessions
        async with request.app.state.pool.acquire() as conn:
            await sessions.close(conn, cookie)
        log.info("page sign-out", extra={"actor": session.principal.actor})
    response = RedirectResponse("/", status_code=303, headers=_HEADERS)
    _drop_cookie(response, request, SESSION_COOKIE)
    return response


def _page_url(org_code: str, month: date | None = None) -> str:
    url = f"/institutions/{quote(org_code, safe='')}"
    return url if month is None else f"{url}?month={month:%Y-%m}"


def _own(session: Session, org_code: str) -> None:
    """Refuse another institution's page before anything of it is read (whether it exists or not)."""
    if not session.principal.may_act_for(org_code):
        raise ForbiddenError("an institution may see only its own page")


@router.get("/institutions/{org_code}")
async def institution_page(request: Request, session: SignedIn, org_code: str, month: str | None = None) -> Response:
    """One institution's month: the calendar heatmap, missing tables, its report rows, quality rates
    and checks, receipts."""
    _own(session, org_code)
    first = _month(request, month)
    async with request.app.state.pool.acquire() as conn:
        page = await load_institution_month(conn, org_code, first)
    if page is None:
        raise NotFoundError(f"no institution {org_code} in the reference data in force")
    zone = _settings(request).zone
    body = institution_html(
        page,
        session=session,
        now=datetime.now(zone),
        zone=zone,
        self_url=_page_url(org_code),
        thresholds=check_thresholds(request),
    )
    return _html(body)


@router.get("/institutions/{org_code}/receipt")
async def receipt_page(
    request: Request, session: SignedIn, org_code: str, endpoint: str = "", event_id: str = "", month: str | None = None
) -> Response:
    """What became of one of the institution's events (the API's receipt, as a page)."""
    # Parameters are checked here rather than by FastAPI, whose 422 would be the API's JSON.
    _own(session, org_code)
    if not 0 < len(event_id) <= _EVENT_ID_CHARS or not set(event_id) <= _CODE_CHARS:
        raise InvalidRequestError("an event_id is 1-128 characters of letters, digits and . _ : -")
    back = _page_url(org_code, parse_month(month) if month else None)
    receipt: Receipt | None
    try:
        receipt = await receipt_for(request.app.state.pool, session.principal, endpoint, org_code, event_id)
        status = 200
    except NotFoundError:
        if endpoint not in {stream.endpoint for stream in STREAMS.values()}:
            raise
        receipt, status = None, 404
    body = render(
        "receipt.html.j2",
        title="回执 Receipt",
        session=session,
        receipt=None if receipt is None else receipt.as_dict(endpoint),
        endpoint=endpoint,
        event_id=event_id,
        org_code=org_code,
        back=back,
    )
    return _html(body, status)
