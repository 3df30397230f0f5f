import hashlib
import hmac
import http.server
import json
import threading

import pytest

from jobrunner.signing import parse_header

from jobrunner.worker.client import (
    ApiClient,
    RetryAborted,
    TransientError,
    backoff_delay,
)
from jobrunner.signing import authorization_header, compute_signature


def expected_hmac(secret, message):
    return hmac.new(secret, message, hashlib.sha1).hexdigest()


def test_signature_of_a_get():
    path = "/api/v1/run/?state=enqueueable&limit=2"
    assert compute_signature("verysecret", "get", path) == expected_hmac(
        b"verysecret", b"GET/api/v1/run/?state=enqueueable&limit=2"
    )


def test_signature_covers_the_raw_body():
    body = b'{"enqueue_dts":"2013-01-01T00:00:00.000000+00:00"}'
    signature = compute_signature("verysecret", "patch", "/api/v1/run/7/", body)
    assert signature == expected_hmac(
        b"verysecret", b"PATCH/api/v1/run/7/" + body
    )
    assert signature != compute_signature("verysecret", "patch", "/api/v1/run/7/", b"")


def test_authorization_header_format():
    header = authorization_header("worker1", "verysecret", "GET", "/api/v1/worker/")
    assert header == "ApiKey worker1:" + expected_hmac(
        b"verysecret", b"GET/api/v1/worker/"
    )


def test_prepared_request_is_signed_over_what_is_sent():
    client = ApiClient("http://127.0.0.1:6543/", "worker1", "verysecret", signature_version=1)
    prepared = client.prepare(
        "patch",
        "/api/v1/run/7/",
        data={"enqueue_dts": None, "worker": "/api/v1/worker/1/", "note": "ü"},
    )
    assert prepared.url == "http://127.0.0.1:6543/api/v1/run/7/"
    assert prepared.headers["Content-Type"] == "application/json"
    # Compact JSON, no spaces.
    assert prepared.body == (
        '{"enqueue_dts":null,"worker":"/api/v1/worker/1/","note":"ü"}'.encode()
    )
    assert prepared.headers["Authorization"] == "ApiKey worker1:" + expected_hmac(
        b"verysecret", b"PATCH/api/v1/run/7/" + prepared.body
    )


def test_query_string_is_signed_as_sent():
    client = ApiClient("http://127.0.0.1:6543", "worker 1", "s", signature_version=1)
    prepared = client.prepare(
        "GET", "/api/v1/run/", {"state": "in_queue", "worker__api_key": "worker 1/x"}
    )
    assert prepared.path_url == (
        "/api/v1/run/?state=in_queue&worker__api_key=worker+1%2Fx"
    )
    assert prepared.body is None
    assert "Content-Type" not in prepared.headers
    assert prepared.headers["Authorization"] == "ApiKey worker 1:" + expected_hmac(
        b"s", b"GET" + prepared.path_url.encode()
    )


def test_url_for_keeps_a_path_prefix_and_next_links():
    client = ApiClient("http://host/jobrunner/", "k", "s")
    assert client.url_for("/api/v1/run/") == "http://host/jobrunner/api/v1/run/"
    assert (
        client.url_for("/jobrunner/api/v1/run/?offset=200")
        == "http://host/jobrunner/api/v1/run/?offset=200"
    )
    assert client.url_for("/api/v1/run/?a=1", {"b": 2}) == (
        "http://host/jobrunner/api/v1/run/?a=1&b=2"
    )


def test_backoff_grows_with_jitter_and_is_capped():
    delays = [backoff_delay(attempt, base=0.5, cap=30) for attempt in range(40)]
    assert 0.25 <= delays[0] <= 0.5
    assert 4 <= delays[4] <= 8
    assert all(delay <= 30 for delay in delays)
    assert max(delays) >= 15


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Checks every request's signature the way the server must."""

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        server = self.server
        signed = parse_header(self.headers.get("Authorization"))
        valid = (
            signed is not None and signed.version == 2 and signed.api_key == "worker1"
            and signed.fresh() and signed.verify("verysecret", {self.command}, self.path, body)
        )
        server.requests.append((self.command, self.path, body, valid))
        status = server.statuses.pop(0) if server.statuses else 200
        payload = json.dumps({"objects": [], "meta": {"next": None}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PATCH = do_POST = handle_any


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.requests = []
    server.statuses = []
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def make_client(server):
    host, port = server.server_address
    return ApiClient(f"http://{host}:{port}/", "worker1", "verysecret", timeout=5,
                     backoff_cap=0.05)


def test_signature_verifies_on_the_receiving_side(http_server):
    client = make_client(http_server)
    client.request("GET", "/api/v1/kill_request/",
                   {"run__worker__api_key": "worker1", "execute_dts__isnull": "true"})
    client.request("PATCH", "/api/v1/run/7/", data={"return_success": False})
    assert [(method, path, ok) for method, path, _body, ok in http_server.requests] == [
        ("GET", "/api/v1/kill_request/?run__worker__api_key=worker1"
                "&execute_dts__isnull=true", True),
        ("PATCH", "/api/v1/run/7/", True),
    ]
    assert http_server.requests[1][2] == b'{"return_success":false}'


def test_5xx_is_retried_until_the_server_answers(http_server):
    http_server.statuses = [503, 502, 500, 202]
    response = make_client(http_server).request("PATCH", "/api/v1/run/7/", data={})
    assert response.status_code == 202
    assert len(http_server.requests) == 4


def test_4xx_is_returned_not_retried(http_server):
    http_server.statuses = [409]
    response = make_client(http_server).request("PATCH", "/api/v1/run/7/", data={})
    assert response.status_code == 409
    assert len(http_server.requests) == 1


def test_without_retry_a_5xx_raises(http_server):
    http_server.statuses = [503]
    with pytest.raises(TransientError):
        make_client(http_server).request("GET", "/api/v1/run/", retry=False)


def test_unreachable_server_is_transient_and_abortable():
    # A port nobody listens on: bind one, then close it.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ApiClient(f"http://127.0.0.1:{port}/", "k", "s", timeout=2, backoff_cap=0.05)
    with pytest.raises(TransientError):
        client.request("GET", "/api/v1/worker/", retry=False)

    abort = threading.Event()
    attempts = []
    original_send_once = client.send_once

    def counting_send_once(*args, **kwargs):
        attempts.append(1)
        if len(attempts) == 3:
            abort.set()
        return original_send_once(*args, **kwargs)

    client.send_once = counting_send_once
    with pytest.raises(RetryAborted):
        client.request("GET", "/api/v1/worker/", abort=abort)
    assert len(attempts) == 3
