"""Signed client of the server's REST API.

It trusts the server's answers no further than it must: it follows only
URLs under its api_base_url (an absolute URL to another host would get a
signed request), pages through a list at most MAX_PAGES times, and
verifies HTTPS certificates always (against `ca_bundle` when given).
"""

import datetime
import json
import logging
import random
import threading
import time
import urllib.parse

import requests

from ..signing import authorization_header
from .clock import ServerClock, pause

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
REQUEST_TIMEOUT_SECONDS = 30.0
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 30.0
# Statuses worth asking again: the server (or a proxy in front of it) is
# overloaded or restarting; any other 4xx is the client's fault.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})

# Mistakes in the request itself: retrying cannot help.
_PERMANENT_REQUEST_ERRORS = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
)


def parse_datetime(value):
    """An API datetime string as an aware datetime, or None if unparseable."""
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed


def encode_json_body(data):
    """Compact JSON bytes: what is signed is exactly what is sent."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def backoff_delay(attempt, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS):
    """Exponential back-off with jitter for the ``attempt``-th retry (from 0).

    The jitter keeps many workers from hammering a recovering server in step.
    """
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return random.uniform(ceiling / 2, ceiling)


# A list longer than this many pages is a server that loops.
MAX_PAGES = 1000


class TransientError(Exception):
    """The server could not be reached or answered 5xx; worth retrying."""


class RetryAborted(Exception):
    """Retrying was given up because the daemon is shutting down."""


class ApiError(Exception):
    """The server answered with a status the caller did not expect."""

    def __init__(self, method, path, status, body):
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        super().__init__(f"{method} {path} -> {status}: {body[:500]}")


class UntrustedURL(ApiError):
    """The server named a URL outside the API base URL; it is not followed."""

    def __init__(self, message):
        super().__init__("GET", "-", 0, message)


def response_json(response, method, path, ok_statuses=(200, 201, 202)):
    """The decoded body of a response whose status is in ``ok_statuses``."""
    if response.status_code not in ok_statuses:
        raise ApiError(method, path, response.status_code, response.text)
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            method, path, response.status_code, "body is not JSON: " + response.text
        ) from None


class ApiClient:
    """Signs and sends requests; retries what is worth retrying."""

    def __init__(
        self,
        base_url,
        api_key,
        secret,
        timeout=REQUEST_TIMEOUT_SECONDS,
        backoff_cap=BACKOFF_CAP_SECONDS,
        ca_bundle=None,
        signature_version=2,
    ):
        self.base_url = base_url.rstrip("/")
        self._base_path = urllib.parse.urlsplit(self.base_url).path
        # Certificates are always verified; a bundle only says against what.
        self.verify = ca_bundle or True
        self.signature_version = signature_version
        self.clock = ServerClock()
        self.api_key = api_key
        self.secret = secret
        self.timeout = timeout
        self.backoff_cap = backoff_cap
        # One session per thread: requests.Session is not documented as
        # thread-safe, and each run reports from its own thread.
        self._local = threading.local()

    @property
    def session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.verify = self.verify
        return session

    def url_for(self, path, params=None):
        """The full URL for an API path (``/api/v1/...``) and query parameters.

        A path or URL from the server's answers is followed only when it lies
        under the base URL; anything else raises UntrustedURL.
        """
        if not isinstance(path, str):
            raise UntrustedURL(f"not a URL: {path!r}")
        if path.startswith(("http://", "https://", "//")):
            url = path if not path.startswith("//") else "x:" + path
            if not url.startswith(self.base_url + "/"):
                raise UntrustedURL(f"{path!r} is not under {self.base_url}")
        else:
            if not path.startswith("/"):
                raise UntrustedURL(f"{path!r} is not an absolute path")
            if self._base_path and path.startswith(self._base_path + "/"):
                # A path that already carries the base URL's prefix.
                path = path[len(self._base_path):]
            url = self.base_url + path
        path_part = urllib.parse.urlsplit(url).path
        segments = urllib.parse.unquote(path_part).split("/")
        if ".." in segments or "." in segments or "\\" in path_part or any(
            ord(c) < 32 for c in url
        ):
            raise UntrustedURL(f"{path!r} leaves the API")
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def prepare(self, method, path, params=None, data=None):
        """A signed request ready to send.

        The signature covers ``prepared.path_url``: the path exactly as
        requests will put it on the wire, after its own re-quoting.
        """
        method = method.upper()
        headers = {"Accept": "application/json"}
        body = None
        if data is not None:
            body = encode_json_body(data)
            headers["Content-Type"] = "application/json"
        prepared = requests.Request(
            method, self.url_for(path, params), headers=headers, data=body
        ).prepare()
        prepared.headers["Authorization"] = authorization_header(
            self.api_key, self.secret, method, prepared.path_url, prepared.body or b"",
            version=self.signature_version, timestamp=self.clock.time(),
        )
        return prepared

    def now_iso(self):
        """Now by the server's clock, as the API expects datetimes."""
        return self.clock.now_iso()

    def send_once(self, method, path, params=None, data=None, timeout=None):
        """One attempt; raises TransientError when a retry may succeed.
        `timeout` replaces the client's own for this request (a list the
        server holds open needs longer)."""
        response, clock_moved = self._send(method, path, params, data, timeout)
        if response.status_code == 401 and clock_moved:
            # Signed with a timestamp the server found stale: once more with
            # the offset its answer taught.
            response, _ = self._send(method, path, params, data, timeout)
        status = response.status_code
        if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
            raise TransientError(
                f"{method} {response.request.path_url} -> {status}: {response.text[:200]}"
            )
        log.debug("%s %s -> %s", method, response.request.path_url, status)
        return response

    def _send(self, method, path, params, data, timeout):
        prepared = self.prepare(method, path, params, data)
        sent_at = time.time()
        try:
            response = self.session.send(
                prepared, timeout=timeout or self.timeout, allow_redirects=False
            )
        except _PERMANENT_REQUEST_ERRORS:
            raise
        except requests.RequestException as error:
            # The connection may be broken; start afresh next time.
            self._local.session = None
            raise TransientError(f"{method} {prepared.path_url}: {error}") from error
        return response, self.clock.learn(response.headers.get("Date"), sent_at, time.time())

    def request(self, method, path, params=None, data=None, *, retry=True, abort=None,
                timeout=None):
        """Send a request and return the response, whatever its status.

        With ``retry``, transient failures are retried with back-off until the
        server answers or ``abort`` (a threading.Event) is set, which raises
        RetryAborted. Without it, a transient failure raises TransientError.
        The first attempt is always made.
        """
        attempt = 0
        while True:
            try:
                return self.send_once(method, path, params, data, timeout)
            except TransientError as error:
                if not retry:
                    raise
                delay = backoff_delay(attempt, cap=self.backoff_cap)
                attempt += 1
                log.warning("%s; retry %d in %.1f s", error, attempt, delay)
                if abort is not None:
                    if abort.is_set() or abort.wait(delay):
                        raise RetryAborted(
                            f"{method} {path}: given up, shutting down"
                        ) from error
                else:
                    pause(delay)

    def get_json(self, path, params=None, **kwargs):
        return response_json(self.request("GET", path, params, **kwargs), "GET", path)

    def list_all(self, path, params=None, **kwargs):
        """Every object of a list endpoint, following ``meta.next`` (at most
        MAX_PAGES pages, never the same page twice)."""
        objects = []
        seen = set()
        page = self.get_json(path, params, **kwargs)
        for _ in range(MAX_PAGES):
            if not isinstance(page, dict) or not isinstance(page.get("objects", []), list):
                raise ApiError("GET", path, 200, "not a list answer")
            objects.extend(o for o in page.get("objects", []) if isinstance(o, dict))
            next_path = (page.get("meta") or {}).get("next")
            if not next_path:
                return objects
            if next_path in seen:
                raise ApiError("GET", path, 200, f"the list loops back to {next_path!r}")
            seen.add(next_path)
            page = self.get_json(next_path, **kwargs)
        raise ApiError("GET", path, 200, f"more than {MAX_PAGES} pages")
