"""An in-memory stand-in for the server's REST API, enough for the worker.

It checks every request's HMAC the way the server must, records the
requests in order, and keeps the run rules the worker relies on: a claim of
a claimed run and a second return are 409, a POST of a second log is 400.
"""

import datetime
import hashlib
import hmac
import http.server
import json
import threading
import urllib.parse

API = "/api/v1/"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class FakeApi:
    def __init__(self, api_key="worker1", secret="verysecret"):
        self.api_key = api_key
        self.secret = secret
        self.lock = threading.Lock()
        self.requests = []  # (method, path, body or None, signature_ok)
        self.worker = {
            "id": 1,
            "resource_uri": API + "worker/1/",
            "title": "Test worker 1",
            "api_key": api_key,
            "enqueue_is_enabled": True,
            "ping_response_dts": None,
            "worker_version": None,
            "concurrent_jobs": 4,
        }
        self.jobs = {}
        self.runs = {}
        self.run_logs = {}
        self.kill_requests = {}
        # Failures to inject: (method, path prefix, body key or None) -> statuses.
        self.failures = []
        # Runs another worker takes just before our claim arrives.
        self.stolen_on_claim = set()
        self.max_started_at_once = 0
        self._next_id = 1
        self._server = None

    # Set-up helpers

    def _new_id(self):
        self._next_id += 1
        return self._next_id

    def add_job(self, script_content):
        job_id = self._new_id()
        self.jobs[job_id] = {
            "id": job_id,
            "resource_uri": f"{API}job/{job_id}/",
            "script_content": script_content,
        }
        return self.jobs[job_id]

    def add_run(self, job, **fields):
        run_id = self._new_id()
        run = {
            "id": run_id,
            "resource_uri": f"{API}run/{run_id}/",
            "job": job["resource_uri"],
            "worker": None,
            "run_log": None,
            "schedule_dts": _now().isoformat(),
            "enqueue_dts": None,
            "start_dts": None,
            "return_dts": None,
            "return_success": None,
            "pid": None,
        }
        run.update(fields)
        with self.lock:
            self.runs[run_id] = run
        return run

    def add_run_log(self, run, content):
        log_id = self._new_id()
        self.run_logs[log_id] = {
            "id": log_id,
            "resource_uri": f"{API}run_log/{log_id}/",
            "run": run["resource_uri"],
            "content": content,
        }
        run["run_log"] = self.run_logs[log_id]["resource_uri"]
        return self.run_logs[log_id]

    def add_kill_request(self, run):
        kill_id = self._new_id()
        with self.lock:
            self.kill_requests[kill_id] = {
                "id": kill_id,
                "resource_uri": f"{API}kill_request/{kill_id}/",
                "run": run["resource_uri"],
                "schedule_dts": _now().isoformat(),
                "enqueue_dts": None,
                "execute_dts": None,
            }
        return self.kill_requests[kill_id]

    def fail(self, method, path, statuses, body_key=None):
        self.failures.append([method, path, body_key, list(statuses)])

    def log_of(self, run):
        uri = self.runs[run["id"]]["run_log"]
        if uri is None:
            return None
        return self.run_logs[self._id(uri)]["content"]

    def requests_to(self, method, path):
        with self.lock:
            return [r for r in self.requests if r[0] == method and r[1].startswith(path)]

    # Server

    def start(self):
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_any(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw_body = self.rfile.read(length)
                status, payload = fake.handle(
                    self.command, self.path, raw_body, self.headers.get("Authorization")
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = handle_any

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        host, port = self._server.server_address
        return f"http://{host}:{port}/"

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    # Request handling

    @staticmethod
    def _id(uri):
        return int(uri.rstrip("/").rsplit("/", 1)[1])

    def handle(self, method, full_path, raw_body, authorization):
        expected = "ApiKey {}:{}".format(
            self.api_key,
            hmac.new(
                self.secret.encode(),
                method.encode() + full_path.encode() + raw_body,
                hashlib.sha1,
            ).hexdigest(),
        )
        body = json.loads(raw_body) if raw_body else None
        with self.lock:
            self.requests.append((method, full_path, body, authorization == expected))
            if authorization != expected:
                return 401, {"error": "not authenticated"}
            for failure in self.failures:
                f_method, f_path, f_key, statuses = failure
                if (
                    statuses
                    and method == f_method
                    and full_path.startswith(f_path)
                    and (f_key is None or (body and f_key in body))
                ):
                    return statuses.pop(0), {"error": "injected"}
            path, _, query = full_path.partition("?")
            params = dict(urllib.parse.parse_qsl(query))
            resource, _, rest = path[len(API):].partition("/")
            object_id = int(rest.strip("/")) if rest.strip("/") else None
            handler = getattr(self, f"_{method.lower()}_{resource}", None)
            if handler is None:
                return 405, {"error": "not allowed"}
            return handler(object_id, params, body)

    def _listing(self, objects, params):
        limit = int(params.get("limit", 200))
        objects = objects[:limit]
        return 200, {
            "meta": {"limit": limit, "offset": 0, "total_count": len(objects),
                     "next": None, "previous": None},
            "objects": objects,
        }

    def _get_worker(self, object_id, params, body):
        if object_id is None:
            return self._listing([self.worker], params)
        return 200, self.worker

    def _patch_worker(self, object_id, params, body):
        self.worker.update(body)
        return 202, self.worker

    def _get_job(self, object_id, params, body):
        return 200, self.jobs[object_id]

    def _run_state(self, run):
        if run["return_dts"]:
            return "completed"
        if run["start_dts"]:
            return "started"
        if run["enqueue_dts"]:
            return "in_queue"
        return "scheduled"

    def _get_run(self, object_id, params, body):
        if object_id is not None:
            return 200, self.runs[object_id]
        runs = list(self.runs.values())
        state = params.get("state")
        if state == "enqueueable":
            runs = [r for r in runs if self._run_state(r) == "scheduled"
                    and r["worker"] in (None, self.worker["resource_uri"])]
        elif state:
            runs = [r for r in runs if self._run_state(r) == state]
        if params.get("worker__api_key"):
            runs = [r for r in runs if r["worker"] == self.worker["resource_uri"]]
        return self._listing(runs, params)

    def _patch_run(self, object_id, params, body):
        run = self.runs[object_id]
        if body.get("enqueue_dts") and "worker" in body:
            if object_id in self.stolen_on_claim:
                run.update(enqueue_dts=_now().isoformat(), worker=API + "worker/99/")
            if run["enqueue_dts"] is not None or run["return_dts"] is not None:
                return 409, {"error": "already claimed"}
            if body["worker"] != self.worker["resource_uri"]:
                return 403, {"error": "not yours"}
        elif run["worker"] != self.worker["resource_uri"]:
            return 403, {"error": "not yours"}
        if "return_dts" in body:
            if run["return_dts"] is not None:
                return 409, {"error": "already returned"}
            if run["start_dts"] is None:
                return 409, {"error": "not started"}
        if run["return_dts"] is not None and (
            {"start_dts", "pid"} & set(body)
        ):
            return 409, {"error": "already returned"}
        run.update(body)
        started = sum(1 for r in self.runs.values() if self._run_state(r) == "started")
        self.max_started_at_once = max(self.max_started_at_once, started)
        return 202, run

    def _get_run_log(self, object_id, params, body):
        if object_id is not None:
            return 200, self.run_logs[object_id]
        logs = list(self.run_logs.values())
        if "run" in params:
            logs = [log for log in logs if self._id(log["run"]) == int(params["run"])]
        return self._listing(logs, params)

    def _post_run_log(self, object_id, params, body):
        run = self.runs[self._id(body["run"])]
        if run["run_log"] is not None:
            return 400, {"error": "invalid", "errors": {"run": "has a log already"}}
        if run["return_dts"] is not None:
            return 403, {"error": "run returned"}
        log = self.add_run_log(run, body["content"])
        return 201, log

    def _patch_run_log(self, object_id, params, body):
        log = self.run_logs[object_id]
        if self.runs[self._id(log["run"])]["return_dts"] is not None:
            return 403, {"error": "run returned"}
        log.update(body)
        return 202, log

    def _get_kill_request(self, object_id, params, body):
        kills = list(self.kill_requests.values())
        if params.get("execute_dts__isnull") == "true":
            kills = [k for k in kills if k["execute_dts"] is None]
        return self._listing(kills, params)

    def _patch_kill_request(self, object_id, params, body):
        self.kill_requests[object_id].update(body)
        return 202, self.kill_requests[object_id]
