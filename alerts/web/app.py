"""Application factory: routes, session middleware, templates, shared state."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from alerts.keys import web_secret
from alerts.links import ReviewLinks
from alerts.render import environment
from alerts.thumbs import Thumbnailer
from alerts.web import views
from alerts.web.security import SECURITY_HEADERS
from alerts.web.throttle import DeviceCookies, Limits
from artwatch.db import get_pool
from artwatch.settings import Settings, get_settings

STATIC = Path(__file__).resolve().parent / "static"


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response that does not set its own."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in SECURITY_HEADERS.items()
                    if k.lower().encode() not in present
                ]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None, db_url: str | None = None) -> Starlette:
    settings = settings or get_settings()
    secret = web_secret(settings)
    routes = [
        Route("/", views.queue_page, name="queue"),
        Route("/login", views.login_page, methods=["GET", "POST"], name="login"),
        Route("/logout", views.logout_action, methods=["POST"], name="logout"),
        Route("/matches/{match_id:int}", views.match_page, name="match"),
        Route("/matches/{match_id:int}/review", views.review_action, methods=["POST"],
              name="review"),
        Route("/r/{token}", views.link_page, methods=["GET", "POST"], name="link"),
        Route("/search", views.search_page, name="search"),
        Route("/submit", views.submit_page, methods=["GET", "POST"], name="submit"),
        Route("/img/{sha256}", views.image, name="image"),
        Route("/alerts/{alert_id:int}", views.alert_page, name="alert"),
        Route("/healthz", views.healthz, name="healthz"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    https = settings.web_base_url.startswith("https://")
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,  # the cookie; `web_sessions` rows decide who is signed in
            secret_key=secret,
            session_cookie="artwatch_session",
            max_age=settings.web_session_max_age_s,
            same_site="lax",
            https_only=https,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=views.HANDLERS)
    app.state.settings = settings
    app.state.pool = get_pool(db_url, settings)
    app.state.links = ReviewLinks(secret, settings.web_base_url, settings.review_link_max_age_s)
    app.state.thumbnailer = Thumbnailer.from_settings(settings)
    app.state.templates = Jinja2Templates(env=environment())
    app.state.https = https
    app.state.device_cookies = DeviceCookies(secret)
    app.state.login_limits = Limits(
        window_s=settings.web_login_window_s,
        max_failures_account=settings.web_login_max_failures_account,
        max_failures_address=settings.web_login_max_failures_address,
    )
    return app
