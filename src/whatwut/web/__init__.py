"""The team inbox in the browser: server-rendered pages enhanced with htmx and SSE."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install_web(app: FastAPI) -> None:
    """Mount the pages, their static files and the page-specific error answers on the app."""
    from whatwut.web.pages import login_redirect, page_not_found, router
    from whatwut.web.security import LoginRequired, PageNotFound
    from whatwut.web.templating import STATIC_DIR
    from whatwut.web.whatsapp_pages import router as whatsapp_router

    app.include_router(router)
    app.include_router(whatsapp_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(LoginRequired, login_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(PageNotFound, page_not_found)  # type: ignore[arg-type]
