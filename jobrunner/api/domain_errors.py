"""The one mapping of the domain's errors to HTTP answers, in the API's
JSON error format."""
from ..errors import DomainError, InvalidFields, NotAllowed, RunConflict

STATUS = ((InvalidFields, 400), (NotAllowed, 403), (RunConflict, 409))


def status_of(exc):
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def domain_error(exc, request):
    from .views import error_response

    return error_response(request, status_of(exc), exc.message, exc.errors)


def includeme(config):
    config.add_exception_view(domain_error, context=DomainError)
