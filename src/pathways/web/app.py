"""The application factory: ``create_app(settings)`` wires the store, the session and security
middleware, the error pages and one router per audience. ``from_environment`` is what
``pathways web`` gives uvicorn."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from pathways.access import SERVICE, AccessDenied
from pathways.orchestration.service import Runtimes, open_store
from pathways.orchestration.versions import VersionNotPublished
from pathways.orchestration.warm import WarmPrefect
from pathways.store.db import Store, StoreError, UnknownEnrollment
from pathways.web import security
from pathways.web.pages import render
from pathways.web.settings import WebSettings

HERE = Path(__file__).parent
VENDOR = HERE.parent / "views" / "vendor"  # htmx, fetched at set-up as the Mermaid bundle is


def create_app(settings: WebSettings) -> FastAPI:
    service = open_store(settings.clock, settings.database_url, actor=SERVICE)  # migrated once, configuration noted
    app = FastAPI(title="pathways", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_prefect_kept_warm,
                  dependencies=[Depends(security.check_csrf)])
    app.state.settings = settings
    app.state.prefect = WarmPrefect()  # started by the lifespan (uvicorn, `with TestClient(app)`); else advances are pending
    app.state.runtimes = Runtimes()
    app.state.limiter = security.LoginLimiter(settings.clock, settings.login_failures, settings.login_window)
    app.state.store_for = lambda actor: Store(service.engine, settings.clock.now, actor)

    app.add_middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="pathways_session",
                       max_age=int(settings.session_lifetime.total_seconds()), same_site="lax", https_only=settings.secure_cookies)
    app.middleware("http")(security.security_headers)  # outermost: every response, errors too

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/vendor/htmx.min.js", include_in_schema=False)
    def htmx() -> Response:
        path = VENDOR / "htmx.min.js"
        if not path.is_file():  # set-up not run: the pages work without it (plain forms)
            return Response("htmx is not installed (run scripts/setup.sh)", status_code=404, media_type="text/plain")
        return FileResponse(path, media_type="text/javascript")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:  # browsers ask for it on every first page: no icon, and no 404 in their console
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/worklist", status_code=303)

    from pathways.web.routes import audit, auth, care, coordinate, migrate, plan

    app.include_router(auth.router)
    app.include_router(care.router)
    app.include_router(plan.router)
    app.include_router(coordinate.router)
    app.include_router(migrate.router)
    app.include_router(audit.router)
    _error_pages(app)
    return app


@asynccontextmanager
async def _prefect_kept_warm(app: FastAPI):
    """One Prefect for the life of the process: the embedded server (or PREFECT_API_URL's) started
    in the background while the application already serves pages (the embedded server takes 10-30
    s), stopped at shut-down; each recorded step is advanced through it (the first ones wait for
    the start)."""
    settings: WebSettings = app.state.settings
    if settings.prefect:
        await run_in_threadpool(app.state.prefect.start_in_background, settings.database_url)  # (Prefect imported first)
    try:
        yield
    finally:
        await run_in_threadpool(app.state.prefect.stop)


def _error_pages(app: FastAPI) -> None:
    @app.exception_handler(security.NotLoggedIn)
    async def not_logged_in(request: Request, exc: security.NotLoggedIn):
        if request.headers.get("HX-Request"):  # htmx follows this header instead of swapping a log-in page into a table
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = "/login" if request.method != "GET" else f"/login?next={request.url.path}"
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(AccessDenied)
    async def denied(request: Request, exc: AccessDenied):  # audited by whoever raised it
        return render(request, "error.html", status=403, title="Not allowed", message=str(exc))

    @app.exception_handler(UnknownEnrollment)
    async def unknown(request: Request, exc: UnknownEnrollment):
        return render(request, "error.html", status=404, title="Not found", message=str(exc))

    @app.exception_handler(VersionNotPublished)
    async def unpublished(request: Request, exc: VersionNotPublished):
        return render(request, "error.html", status=409, title="Pathway version not available", message=str(exc))

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError):
        return render(request, "error.html", status=503, title="The store is unavailable", message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        titles = {403: "Refused", 404: "Not found", 405: "Not allowed", 429: "Too many attempts"}
        return render(request, "error.html", status=exc.status_code, title=titles.get(exc.status_code, "Error"), message=str(exc.detail),
                      headers=getattr(exc, "headers", None))


def from_environment() -> FastAPI:
    """The application on the settings of the environment (uvicorn's factory)."""
    from pathways.web.settings import from_environment as settings_from_environment

    return create_app(settings_from_environment())
