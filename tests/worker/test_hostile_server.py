"""The worker against a hostile server: a real HTTP server on loopback that
answers absolute URLs to another host, lists that loop, ids made for path
traversal and answers that lack fields."""
import glob
import http.server
import json
import threading
import time

import pytest

from jobrunner.worker.client import ApiClient, ApiError, UntrustedURL
from jobrunner.worker.config import WorkerConfig
from jobrunner.worker.daemon import WorkerDaemon

from .test_executor import wait_for


class Recorder(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        with self.server.lock:
            self.server.requests.append((self.command, self.path, body))
        status, payload = self.server.answer(self.command, self.path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_PUT = handle_any


def serve(answer):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.requests, server.lock, server.answer = [], threading.Lock(), answer
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.url = "http://127.0.0.1:%d" % server.server_address[1]
    return server


class HostileServer:
    def __init__(self, evil_url):
        self.evil_url = evil_url
        self.enqueueable_served = False
        self.claim_answers = {
            "/api/v1/run/12/": {"id": "../../../../tmp/jobrunner-pwned", "resource_uri": "/api/v1/run/12/",
                                "job": "/api/v1/job/1/"},
            "/api/v1/run/13/": {},
            "/api/v1/run/14/": {"id": 14, "resource_uri": "/api/v1/run/14/",
                                "job": evil_url + "/api/v1/job/1/"},
        }

    def __call__(self, method, path, body):
        page = {"meta": {"next": None}, "objects": []}
        if method == "GET" and path.startswith("/api/v1/worker/"):
            return 200, {"meta": {"next": None}, "objects": [
                {"id": 1, "resource_uri": "/api/v1/worker/1/", "api_key": "k", "title": "w"}]}
        if method == "PATCH" and path == "/api/v1/worker/1/":
            return 202, {"resource_uri": self.evil_url + "/api/v1/worker/1/"}
        if method == "GET" and ("state=started" in path or path.startswith("/api/v1/kill_request/")):
            # A list whose next page is itself, for ever.
            return 200, {"meta": {"next": path}, "objects": []}
        if method == "GET" and "state=enqueueable" in path:
            if self.enqueueable_served:
                return 200, page
            self.enqueueable_served = True
            return 200, {"meta": {"next": None}, "objects": [
                {"id": 11, "resource_uri": self.evil_url + "/api/v1/run/11/", "job": "/api/v1/job/1/"},
                {"id": 12, "resource_uri": "/api/v1/run/12/", "job": "/api/v1/job/1/"},
                {"id": 13, "resource_uri": "/api/v1/run/13/"},
                {"id": 14, "resource_uri": "/api/v1/run/14/", "job": "/api/v1/job/1/"},
                {"no": "resource_uri"},
                "not even an object",
            ]}
        if method == "GET" and path.startswith("/api/v1/run/"):
            return 200, page
        if method == "PATCH" and path in self.claim_answers:
            if body and body.get("enqueue_dts"):
                return 202, self.claim_answers[path]
            return 202, {"id": int(path.split("/")[-2])}
        return 404, {"error": "not here", "errors": {}}


@pytest.fixture
def hostile(tmp_path):
    evil = serve(lambda method, path, body: (200, {"meta": {"next": None}, "objects": []}))
    server = serve(HostileServer(evil.url))
    config = WorkerConfig(api_base_url=server.url + "/", api_key="k", secret="s", concurrent_jobs=8,
                          poll_interval=0.05, ping_interval=0.1, script_temp_path=str(tmp_path))
    daemon = WorkerDaemon(config)
    result = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    yield server, evil, daemon, tmp_path
    daemon.request_stop()
    thread.join(timeout=20)
    assert not thread.is_alive() and result == [0]
    for srv in (server, evil):
        srv.shutdown()
        srv.server_close()


def releases(server):
    with server.lock:
        return {path for method, path, body in server.requests
                if method == "PATCH" and body == {"enqueue_dts": None, "start_dts": None}}


def test_the_worker_gives_back_what_it_cannot_handle_and_follows_nothing_outside(hostile):
    server, evil, daemon, tmp_path = hostile
    # Each run it claimed but cannot run here is released: a traversal id,
    # a claim answer without fields, a job on another host.
    wait_for(lambda: releases(server) >= {"/api/v1/run/12/", "/api/v1/run/13/", "/api/v1/run/14/"},
             timeout=20)
    # It keeps pinging (on its own URI, not the one the answer named).
    pings = lambda: [p for m, p, b in server.requests if m == "PATCH" and p == "/api/v1/worker/1/"]  # noqa: E731
    count = len(pings())
    wait_for(lambda: len(pings()) > count + 2, timeout=20)
    # Nothing was ever sent to the other host, signed or not.
    assert evil.requests == []
    assert not any("pwned" in str(path) for path in tmp_path.rglob("*"))
    assert not glob.glob("/tmp/jobrunner-pwned*")
    # The run on the other host was not even claimed.
    assert not any("/run/11/" in path for method, path, body in server.requests)


def test_a_looping_list_ends():
    server = serve(HostileServer("http://127.0.0.1:9"))
    try:
        client = ApiClient(server.url, "k", "s", timeout=5)
        started = time.monotonic()
        with pytest.raises(ApiError, match="loops"):
            client.list_all("/api/v1/kill_request/")
        assert time.monotonic() - started < 10
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("url", [
    "http://evil.example/api/v1/run/1/", "https://127.0.0.1:1/api/v1/run/1/", "//evil.example/api/v1/",
    "/api/v1/../../admin", "/api/v1/%2e%2e/%2e%2e/x", "api/v1/run/", "/api/v1/run/1/\r\nX: y",
])
def test_urls_outside_the_base_are_not_followed(url):
    client = ApiClient("http://127.0.0.1:6543/jobrunner", "k", "s")
    with pytest.raises(UntrustedURL):
        client.url_for(url)


def test_urls_under_the_base_are_followed():
    client = ApiClient("http://127.0.0.1:6543/jobrunner", "k", "s")
    assert client.url_for("http://127.0.0.1:6543/jobrunner/api/v1/run/?offset=2") == (
        "http://127.0.0.1:6543/jobrunner/api/v1/run/?offset=2")
    assert client.url_for("/jobrunner/api/v1/run/1/") == "http://127.0.0.1:6543/jobrunner/api/v1/run/1/"
