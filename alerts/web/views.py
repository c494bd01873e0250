"""Endpoints of the review app. Database work runs in the thread pool (psycopg is sync)."""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from alerts.dispatch import load_digest
from alerts.feedback import UnknownMatch, record_decision
from alerts.links import LinkExpired, LinkInvalid
from alerts.model import load_listing_views
from alerts.render import LinkedImages, render_html
from alerts.reviewers import Reviewer, authenticate, get_reviewer
from alerts.sessions import end_session, prune_sessions, session_reviewer, start_session
from alerts.web import queries
from alerts.web.security import (
    CsrfError,
    check_csrf,
    csrf_token,
    login,
    logout,
    safe_next,
    session_token,
)
from alerts.web.throttle import (
    DEVICE_COOKIE,
    DEVICE_MAX_AGE_S,
    Limits,
    Throttled,
    attempt_sign_in,
    client_bucket,
    prune_attempts,
)

log = logging.getLogger(__name__)


def _db(request: Request, fn, *args: Any) -> Any:
    """Run fn(conn, *args) on a pooled connection, in a worker thread."""

    def work() -> Any:
        with request.app.state.pool.connection() as conn:
            return fn(conn, *args)

    return run_in_threadpool(work)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    reviewer: Reviewer | None = getattr(request.state, "reviewer", None)
    context.setdefault("flash", request.session.pop("flash", None))
    context.setdefault("error", None)
    context.update(
        request=request,
        csrf=csrf_token(request),
        signed_in=reviewer is not None,
        me=reviewer.email if reviewer else None,
    )
    return request.app.state.templates.TemplateResponse(
        request, f"web/{name}", context, status_code=status_code
    )


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    from urllib.parse import quote

    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _form(request: Request):
    """The POSTed form, after the CSRF check (raises CsrfError -> 403)."""
    form = await request.form(max_files=0, max_fields=20)
    check_csrf(request, form)
    return form


# --- authentication -------------------------------------------------------------------


def _sign_in(conn, email: str, password: str, address: str, device: str | None,
             limits: Limits, max_age_s: int) -> Throttled | str | None:
    """Throttle, check the password; on success start a server-side session (its token)."""
    result = attempt_sign_in(conn, email, address, device, limits,
                             lambda: authenticate(conn, email, password))
    if not isinstance(result, Reviewer):
        return result
    token = start_session(conn, result.id, max_age_s, address)
    prune_sessions(conn)
    prune_attempts(conn)
    return token


def _minutes(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return _render(request, "login.html", next=safe_next(request.query_params.get("next")))
    form = await _form(request)
    email = str(form.get("email", ""))[:320].strip().lower()
    password = str(form.get("password", ""))[:1024]
    next_page = safe_next(str(form.get("next", "/")))
    address = client_bucket(request.client.host if request.client else None)
    devices = request.app.state.device_cookies
    device = devices.nonce(request.cookies.get(DEVICE_COOKIE), email)
    result = await _db(request, _sign_in, email, password, address, device,
                       request.app.state.login_limits,
                       request.app.state.settings.web_session_max_age_s)
    if isinstance(result, Throttled):
        response = _render(
            request, "login.html", status_code=429, next=next_page,
            error=("Too many failed sign-in attempts. Sign-in is paused here for about "
                   f"{_minutes(result.retry_after_s)}; a browser you have signed in with "
                   "before is not affected."),
        )
        response.headers["Retry-After"] = str(result.retry_after_s)
        return response
    if result is None:
        return _render(request, "login.html", status_code=401,
                       error="Wrong e-mail or password.", next=next_page)
    login(request, result)
    response = RedirectResponse(next_page, status_code=303)
    if device is None:  # this browser now knows the account: its own throttling bucket
        response.set_cookie(
            DEVICE_COOKIE, devices.issue(email), max_age=DEVICE_MAX_AGE_S, path="/login",
            httponly=True, samesite="lax", secure=request.app.state.https,
        )
    return response


async def logout_action(request: Request) -> Response:
    """End the server-side session (a copy of the cookie is worthless afterwards)."""
    await _form(request)
    token = session_token(request)
    if token is not None:
        await _db(request, end_session, token, "logout")
    logout(request)
    return RedirectResponse("/login", status_code=303)


async def _require_login(request: Request) -> int | None:
    """The signed-in reviewer's id, from a live server-side session, or None.

    A session that was logged out, expired, or ended by a password change or by disabling
    the reviewer signs nobody in; the cookie is emptied.
    """
    token = session_token(request)
    if token is None:
        return None
    reviewer = await _db(request, session_reviewer, token)
    if reviewer is None:
        logout(request)
        return None
    request.state.reviewer = reviewer
    return reviewer.id


# --- pages ----------------------------------------------------------------------------


async def queue_page(request: Request) -> Response:
    if await _require_login(request) is None:
        return _login_redirect(request)
    try:
        page = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        page = 1
    rows, total = await _db(request, queries.queue, page)
    pages = max(1, -(-total // queries.QUEUE_PAGE))
    return _render(request, "queue.html", rows=rows, total=total, page=page, pages=pages)


def _match_data(conn, match_id: int) -> dict[str, Any] | None:
    header = queries.match_header(conn, match_id)
    if header is None:
        return None
    ids = queries.listing_match_ids(conn, header["listing_id"])
    views = load_listing_views(conn, ids)
    return {
        "match": header,
        "listing": views[0],
        "reviews": queries.reviews_of_listing(conn, header["listing_id"]),
    }


async def match_page(request: Request) -> Response:
    if await _require_login(request) is None:
        return _login_redirect(request)
    match_id = request.path_params["match_id"]
    data = await _db(request, _match_data, match_id)
    if data is None:
        raise HTTPException(404, "no such match")
    return _render(request, "match.html", img=LinkedImages(""), **data)


async def review_action(request: Request) -> Response:
    rid = await _require_login(request)
    if rid is None:
        raise HTTPException(403, "sign in to review matches")
    form = await _form(request)
    decision = str(form.get("decision", ""))
    if decision not in ("confirm", "dismiss"):
        raise HTTPException(400, "decision must be confirm or dismiss")
    match_id = request.path_params["match_id"]
    try:
        await _db(request, record_decision, match_id, rid, decision, str(form.get("note", "")))
    except UnknownMatch:
        raise HTTPException(404, "no such match") from None
    request.session["flash"] = f"Match {match_id} {decision}ed." if decision == "confirm" else (
        f"Match {match_id} dismissed."
    )
    return RedirectResponse(f"/matches/{match_id}", status_code=303)


async def link_page(request: Request) -> Response:
    """A signed e-mail link: GET shows what it will do, POST (with the CSRF token) does it."""
    links = request.app.state.links
    try:
        action = links.verify(request.path_params["token"])
    except LinkExpired:
        return _render(request, "message.html", status_code=403, title="Link expired",
                       text="This review link has expired. Open the match from the review queue.")
    except LinkInvalid:
        return _render(request, "message.html", status_code=403, title="Invalid link",
                       text="This review link is not valid.")
    reviewer = await _db(request, get_reviewer, action.reviewer_id)
    if reviewer is None or not reviewer.active:
        return _render(request, "message.html", status_code=403, title="Invalid link",
                       text="The reviewer this link was made for no longer has access.")
    if request.method == "GET":
        data = await _db(request, _match_data, action.match_id)
        if data is None:
            raise HTTPException(404, "no such match")
        return _render(request, "link.html", action=action, reviewer=reviewer,
                       img=LinkedImages(""), **data)
    form = await _form(request)
    try:
        decision = await _db(request, record_decision, action.match_id, reviewer.id,
                             action.decision, str(form.get("note", "")))
    except UnknownMatch:
        raise HTTPException(404, "no such match") from None
    return _render(request, "message.html", title="Thank you",
                   text=f"Match {decision.match_id} is now {decision.status} "
                        f"(recorded for {reviewer.email}).")


async def search_page(request: Request) -> Response:
    if await _require_login(request) is None:
        return _login_redirect(request)
    q = request.query_params.get("q", "")
    rows = await _db(request, queries.search, q) if q.strip() else []
    return _render(request, "search.html", q=q, rows=rows)


def _submit(url: str, requested_by: str) -> Any:
    from artwatch.submissions import submit_url  # the same code path as `artwatch submit`

    return submit_url(url, requested_by=requested_by)


async def submit_page(request: Request) -> Response:
    rid = await _require_login(request)
    if rid is None:
        if request.method == "GET":
            return _login_redirect(request)
        raise HTTPException(403, "sign in to submit listings")
    requested_by = f"web:{request.state.reviewer.email}"
    result, url, status = None, "", 200
    if request.method == "POST":
        form = await _form(request)
        url = str(form.get("url", "")).strip()[:4000]
        result = await run_in_threadpool(_submit, url, requested_by)
        if result.ok:
            url = ""
        else:
            status = 400
    recent = await _db(request, queries.recent_submissions, requested_by)
    return _render(request, "submit.html", status_code=status, url=url, result=result,
                   recent=recent)


async def image(request: Request) -> Response:
    if await _require_login(request) is None:
        raise HTTPException(403, "sign in to see photos")
    try:
        size = int(request.query_params.get("s", "160"))
    except ValueError:
        size = 160
    data = await run_in_threadpool(
        request.app.state.thumbnailer.thumbnail, request.path_params["sha256"], size
    )
    if data is None:
        raise HTTPException(404, "no such photo")
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=86400"})


async def alert_page(request: Request) -> Response:
    """The HTML page of a digest (what the e-mail showed, with linked photos).

    Only its own reviewer may open it: the page carries that reviewer's signed links.
    """
    rid = await _require_login(request)
    if rid is None:
        return _login_redirect(request)
    settings = request.app.state.settings
    digest = await _db(request, load_digest, request.path_params["alert_id"],
                       settings.alert_top_k)
    if digest is None or digest.reviewer.id != rid:
        raise HTTPException(404, "no such alert")
    html = render_html(digest, request.app.state.links, LinkedImages(""), inline=False)
    # The digest page carries its own <style> block (it is also the e-mail's template).
    csp = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
    return Response(html, media_type="text/html", headers={"Content-Security-Policy": csp})


async def healthz(request: Request) -> Response:
    def ping(conn) -> bool:
        return conn.execute("SELECT 1 AS ok").fetchone()["ok"] == 1

    return JSONResponse({"ok": await _db(request, ping)})


# --- errors ---------------------------------------------------------------------------


async def _csrf_error(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("403 Forbidden: missing or wrong CSRF token", status_code=403)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _render(request, "message.html", status_code=exc.status_code,
                   title=f"{exc.status_code}", text=str(exc.detail))


HANDLERS = {CsrfError: _csrf_error, HTTPException: _http_error}
