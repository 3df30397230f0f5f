"""Request signatures of the worker protocol, shared by server and worker.

Standard library only, and nothing else of jobrunner: the worker imports this
module and must load no server code.

Two schemes:

* v1, ``Authorization: ApiKey <api_key>:<hex>``: HMAC-SHA1 over the
  upper-cased method + the path with its query string as sent + the raw
  body. Nothing in it changes over time, so a captured request can be sent
  again; the server accepts it while ``jobrunner.accept_v1_signatures`` is
  true, for the original worker.
* v2, ``Authorization: JobRunner-HMAC-SHA256 Credential=<api_key>,
  Timestamp=<unix seconds>, Nonce=<16-64 of [A-Za-z0-9_-]>, Signature=<hex>``:
  HMAC-SHA256 over ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nhex(sha256(body))``.
  The server refuses a timestamp more than MAX_SKEW_SECONDS away from its
  clock and a nonce the worker used before within that window.
"""
import hashlib
import hmac
import re
import secrets
import time

V1_SCHEME = "ApiKey"
V2_SCHEME = "JobRunner-HMAC-SHA256"
MAX_SKEW_SECONDS = 300
NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

# No NUL in the key: PostgreSQL refuses it in the lookup.
_V1_HEADER = re.compile(r"^ApiKey (?P<key>[^:\s\x00]+):(?P<signature>[0-9a-fA-F]+)$")
_V2_HEADER = re.compile(
    r"^JobRunner-HMAC-SHA256\s+"
    r"Credential=(?P<key>[^,\s\x00]+),\s*"
    r"Timestamp=(?P<timestamp>[0-9]{1,12}),\s*"
    r"Nonce=(?P<nonce>[A-Za-z0-9_-]{16,64}),\s*"
    r"Signature=(?P<signature>[0-9a-fA-F]{64})$"
)


def _bytes(value):
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return bytes(value)


# --- v1 ----------------------------------------------------------------------


def v1_signature(secret, method, path_qs, body=b""):
    message = method.upper().encode("ascii") + _bytes(path_qs) + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha1).hexdigest()


def v1_header(api_key, secret, method, path_qs, body=b""):
    return f"{V1_SCHEME} {api_key}:{v1_signature(secret, method, path_qs, body)}"


# The v1 names the rest of the code (and the original worker's tests) use.
compute_signature = v1_signature


def authorization_header(api_key, secret, method, path_qs, body=b"", version=1, timestamp=None):
    """The `Authorization` header value for one request (v2: a fresh nonce,
    signed at `timestamp`, now by default)."""
    if version == 2:
        return v2_header(api_key, secret, method, path_qs, body, timestamp=timestamp)
    return v1_header(api_key, secret, method, path_qs, body)


# --- v2 ----------------------------------------------------------------------


def v2_string_to_sign(method, path_qs, timestamp, nonce, body=b""):
    return b"\n".join((
        method.upper().encode("ascii"),
        _bytes(path_qs),
        str(timestamp).encode("ascii"),
        _bytes(nonce),
        hashlib.sha256(_bytes(body)).hexdigest().encode("ascii"),
    ))


def v2_signature(secret, method, path_qs, timestamp, nonce, body=b""):
    message = v2_string_to_sign(method, path_qs, timestamp, nonce, body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def new_nonce():
    return secrets.token_urlsafe(24)


def v2_header(api_key, secret, method, path_qs, body=b"", timestamp=None, nonce=None):
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    nonce = nonce or new_nonce()
    signature = v2_signature(secret, method, path_qs, timestamp, nonce, body)
    return (
        f"{V2_SCHEME} Credential={api_key}, Timestamp={timestamp}, "
        f"Nonce={nonce}, Signature={signature}"
    )


# --- reading a header ----------------------------------------------------------


class SignedHeader:
    """What an Authorization header claims; `verify` checks it against a secret."""

    def __init__(self, version, api_key, signature, timestamp=None, nonce=None):
        self.version = version
        self.api_key = api_key
        self.signature = signature.lower()
        self.timestamp = timestamp
        self.nonce = nonce

    def expected(self, secret, method, path_qs, body):
        if self.version == 1:
            return v1_signature(secret, method, path_qs, body)
        return v2_signature(secret, method, path_qs, self.timestamp, self.nonce, body)

    def verify(self, secret, methods, path_qs, body):
        """Constant-time check against each method the client may have signed."""
        valid = False
        for method in methods:
            valid |= hmac.compare_digest(self.expected(secret, method, path_qs, body), self.signature)
        return valid

    def fresh(self, now=None):
        """v2: the timestamp lies within MAX_SKEW_SECONDS of now."""
        if self.version == 1:
            return True
        now = time.time() if now is None else now
        return abs(now - self.timestamp) <= MAX_SKEW_SECONDS


def is_signed(header):
    """Whether a header value claims to be a worker's signature (well-formed
    or not): such a request is judged by its signature alone."""
    return bool(header) and header.startswith((V1_SCHEME + " ", V2_SCHEME + " "))


is_api_key_header = is_signed


def parse_header(header):
    """A SignedHeader, or None when the header is neither scheme's form."""
    if not header:
        return None
    header = header.strip()
    match = _V2_HEADER.match(header)
    if match:
        return SignedHeader(2, match["key"], match["signature"], int(match["timestamp"]),
                            match["nonce"])
    match = _V1_HEADER.match(header)
    if match:
        return SignedHeader(1, match["key"], match["signature"])
    return None
