"""The dashboard: `/` is its page, `/dashboard/*` its scripts and styles, shipped in the package.
They load without a token; the page asks for one when the API answers 401."""

from importlib import resources
from pathlib import Path

from litestar import Response, get
from litestar.router import Router
from litestar.static_files import create_static_files_router

ASSETS = Path(str(resources.files("jobcast").joinpath("dashboard")))
ASSETS_PATH = "/dashboard"


@get("/", include_in_schema=False, cache=False)
async def dashboard_page() -> Response[bytes]:
    return Response((ASSETS / "index.html").read_bytes(), media_type="text/html")


def dashboard_assets() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[ASSETS], name="dashboard", include_in_schema=False
    )
