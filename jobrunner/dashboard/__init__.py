"""The dashboard: HTML pages for the people who own the jobs.

The pages are server-rendered frames; small scripts in jobrunner/static/js
read the REST API (and /dashboard/overview.json, served by the API) with the
session cookie and keep the data live.
"""
import hashlib
from pathlib import Path

from pyramid.events import BeforeRender

from ..contexts import JobFactory, RunFactory

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

def static_version():
    """A digest of the static files: a new release gets new asset URLs, so a
    browser never mixes a cached old script with a new page."""
    digest = hashlib.sha1()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(STATIC_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def add_renderer_globals(event):
    request = event.get("request")
    if request is None:
        return
    version = request.registry.get("dashboard_static_version", "")
    event.setdefault("timezone_name", request.registry.jobrunner_settings.timezone)
    event.setdefault(
        "asset",
        lambda path: request.static_path(f"jobrunner:static/{path}") + f"?v={version}",
    )


def includeme(config):
    config.registry["dashboard_static_version"] = static_version()
    config.add_subscriber(add_renderer_globals, BeforeRender)
    config.add_route("home", "/")
    config.add_route("jobs", "/jobs")
    config.add_route("job", "/jobs/{id}", factory=JobFactory, traverse="/{id}")
    config.add_route("run", "/runs/{id}", factory=RunFactory, traverse="/{id}")
    config.scan(".views")
    config.include(".workers")
