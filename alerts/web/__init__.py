"""The review web app (Starlette + Jinja2, served by uvicorn): `artwatch web`."""

from alerts.web.app import create_app

__all__ = ["create_app"]
