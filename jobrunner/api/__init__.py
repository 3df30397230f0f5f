"""The REST API v1, served by traversal under /api/v1/: a list, a detail and a
schema for each resource, JSON in and out."""
from ..errors import json_error
from ..security.policies import SENT_METHOD_KEY


def request_guard_tween_factory(handler, registry):
    """Applies X-HTTP-Method-Override and the body size limit before anything
    looks at the request (the signature covers the overriding method)."""
    limit = registry.jobrunner_settings.max_body_bytes

    def tween(request):
        try:
            # WebOb decodes the path and query string as UTF-8 on first use;
            # bytes that are not UTF-8 would fail in every later step, even
            # in the view that reports errors.
            request.path_info
            request.GET
        except UnicodeDecodeError:
            return json_error(request, 400, "The URL is not valid UTF-8.")
        override = request.headers.get("X-HTTP-Method-Override")
        if override and request.method == "POST":
            method = override.strip().upper()
            if method in ("PATCH", "PUT", "DELETE"):
                # Tastypie clients sign the method they send (POST), others
                # the one they mean: the signature check accepts either.
                request.environ[SENT_METHOD_KEY] = request.method
                request.method = method
        length = request.content_length
        if length is not None and length > limit:
            return _too_large(request, limit)
        if length is None and request.method in ("POST", "PUT", "PATCH"):
            # A body without a length (chunked): read at most one byte past
            # the limit, never the whole stream.
            data = request.body_file_raw.read(limit + 1) if request.is_body_readable else b""
            if len(data) > limit:
                return _too_large(request, limit)
            request.body = data
        return handler(request)

    return tween


def _too_large(request, limit):
    return json_error(request, 413, f"The body is larger than {limit} bytes.")


def includeme(config):
    from .traversal import ApiRoot

    config.add_root_child("api", ApiRoot)
    config.add_tween("jobrunner.api.request_guard_tween_factory")
    config.add_route("dashboard_overview", "/dashboard/overview.json")
    config.scan(".views")
    config.scan(".claims")
    config.scan(".schedule_preview")
    config.scan(".overview")
    config.include(".dashboard_data")
    config.include(".waiting")
