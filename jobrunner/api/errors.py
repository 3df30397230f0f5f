class APIError(Exception):
    """Ends a request with a JSON error: {"error": ..., "errors": {...}}."""

    def __init__(self, status, message, errors=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}
        self.headers = headers or {}


def bad_request(message, errors=None):
    return APIError(400, message, errors)


def forbidden(message="You may not do that."):
    return APIError(403, message)


def conflict(message):
    return APIError(409, message)
