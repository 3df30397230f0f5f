"""Request signing between workers and the server, in one place for both.

A worker signs every request with its secret: the signature is the hex
HMAC-SHA1 of the upper-cased method, the path with its query string exactly
as sent, and the raw body, concatenated. It travels in
`Authorization: ApiKey <api key>:<hex signature>` (older workers send the same
value in an `Authentication` header).

Standard library only, and nothing else of jobrunner: the worker imports this
module and must load no server code.
"""
import hashlib
import hmac
import re

SCHEME = "ApiKey"
# No NUL in the key: PostgreSQL refuses it in the lookup.
_HEADER = re.compile(r"^ApiKey (?P<key>[^:\s\x00]+):(?P<signature>[0-9a-fA-F]+)$")


def _as_bytes(value):
    if value is None:
        return b""
    if isinstance(value, str):
        # surrogateescape: a server-side path decoded from bytes that are not
        # UTF-8 comes back as the bytes the client signed.
        return value.encode("utf-8", "surrogateescape")
    return bytes(value)


def signature_message(method, path_qs, body=b""):
    """What is signed: METHOD + path with query + raw body, as bytes."""
    return method.upper().encode("utf-8") + _as_bytes(path_qs) + _as_bytes(body)


def compute_signature(secret, method, path_qs, body=b""):
    """The hex HMAC-SHA1 of one request."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, signature_message(method, path_qs, body), hashlib.sha1).hexdigest()


def authorization_header(api_key, secret, method, path_qs, body=b""):
    """The `Authorization` header value for one request."""
    return f"{SCHEME} {api_key}:{compute_signature(secret, method, path_qs, body)}"


def is_api_key_header(value):
    """Whether a header value claims to be a worker's signature (well-formed
    or not): such a request is judged by its signature alone."""
    return bool(value and value.startswith(SCHEME + " "))


def parse_authorization(value):
    """(api key, signature) from a header value, or None if malformed."""
    if not value:
        return None
    match = _HEADER.match(value.strip())
    if match is None:
        return None
    return match["key"], match["signature"]


def signature_matches(expected, given):
    """Constant-time comparison; hex case does not matter."""
    return hmac.compare_digest(expected, given.lower())
