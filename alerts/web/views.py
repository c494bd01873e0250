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
from alerts.reviewers import authenticate, get_reviewer
from alerts.web import queries
from alerts.web.security import (
    CsrfError,
    check_csrf,
    csrf_token,
    login,
    logout,
    reviewer_id,
    safe_next,
)

log = logging.getLogger(__name__)


def _db(request: Request, fn, *args: Any) -> Any:
    """Run fn(conn, *args) on a pooled connection, in a worker thread."""

    def work() -> Any:
        with request.app.state.pool.connection() as conn:
            return fn(conn, *args)

    return run_in_threadpool(work)


def _render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    rid = reviewer_id(request)
    context.setdefault("flash", request.session.pop("flash", None))
    context.setdefault("error", None)
    context.update(
        request=request,
        csrf=csrf_token(request),
        signed_in=rid is not None,
        me=request.session.get("email"),
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


async def login_page(request: Request) -> Response:
    if request.method == "GET":
        return _render(request, "login.html", next=safe_next(request.query_params.get("next")))
    form = await _form(request)
    email = str(form.get("email", ""))[:320]
    password = str(form.get("password", ""))[:1024]
    reviewer = await _db(request, authenticate, email, password)
    if reviewer is None:
        return _render(
            request, "login.html", status_code=401, error="Wrong e-mail or password.",
            next=safe_next(str(form.get("next", "/"))),
        )
    login(request, reviewer.id)
    request.session["email"] = reviewer.email
    return RedirectResponse(safe_next(str(form.get("next", "/"))), status_code=303)


async def logout_action(request: Request) -> Response:
    await _form(request)
    logout(request)
    return RedirectResponse("/login", status_code=303)


def _active(conn, rid: int) -> bool:
    reviewer = get_reviewer(conn, rid)
    return reviewer is not None and reviewer.active


async def _require_login(request: Request) -> int | None:
    """The signed-in reviewer's id; a disabled account's session ends here."""
    rid = reviewer_id(request)
    if rid is not None and not await _db(request, _active, rid):
        logout(request)
        return None
    return rid


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
    requested_by = f"web:{request.session.get('email') or rid}"
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
