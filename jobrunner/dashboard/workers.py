"""The Workers page: a frame that its script fills from /dashboard/workers.json."""
from pyramid.view import view_config

from ..security.permissions import Permission
from .views import TEMPLATES, frame


@view_config(route_name="workers", request_method="GET", renderer=TEMPLATES + "workers.jinja2",
             permission=Permission.VIEW)
def workers_page(request):
    return frame(request, "workers")


def includeme(config):
    config.add_route("workers", "/workers")
    config.scan(".workers")
