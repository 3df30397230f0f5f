"""The worker daemon: claims due runs over the REST API and executes them.

A pure HTTP client of the server (SPEC section 6): it imports nothing of the
server side, only the standard library and requests.
"""

import logging
import signal
import sys
import threading

from . import executor
from .client import (
    ApiClient,
    ApiError,
    RetryAborted,
    TransientError,
    backoff_delay,
    parse_datetime,
    response_json,
    utc_now_iso,
)
from .config import config_from_command_line, security_warnings, worker_version
from .logbuffer import LogBuffer, append_within

log = logging.getLogger("jobrunner.worker")

API = "/api/v1/"
# How often the log of a running script is sent to the server.
LOG_UPDATE_INTERVAL_SECONDS = 2.0
NOTE_PREFIX = "[jobrunner-worker] "
KILLED_NOTE = NOTE_PREFIX + "killed on request"
RESTARTED_NOTE = (
    NOTE_PREFIX + "the worker restarted while this run was going on; "
    "the run is returned as failed"
)


def configure_logging(level_name):
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level_name.upper()),
        format="%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s",
    )


class RunLogWriter:
    """Creates a run's log once (POST), then updates it (PATCH)."""

    def __init__(self, client, run, run_log_uri=None, abort=None):
        self.client = client
        self.run = run
        self.run_log_uri = run_log_uri
        self.abort = abort
        # The live reporter and the final write must not both POST.
        self._lock = threading.Lock()

    def write(self, content, *, retry=True):
        """Store ``content`` as the run's log; raises ApiError on a refusal."""
        with self._lock:
            if self.run_log_uri is None:
                response = self._request(
                    "POST",
                    API + "run_log/",
                    {"run": self.run["resource_uri"], "content": content},
                    retry,
                )
                if response.status_code == 201:
                    self.run_log_uri = self._created_uri(response)
                    return
                # A POST retried after a lost answer, or a log made by an
                # earlier worker process: the log exists, find it.
                self.run_log_uri = self._find_existing()
                if self.run_log_uri is None:
                    response_json(response, "POST", API + "run_log/", (201,))
            response = self._request(
                "PATCH", self.run_log_uri, {"content": content}, retry
            )
            response_json(response, "PATCH", self.run_log_uri, (200, 202, 204))

    def _request(self, method, path, data, retry):
        return self.client.request(method, path, data=data, retry=retry, abort=self.abort)

    def _created_uri(self, response):
        body = response_json(response, "POST", API + "run_log/", (201,)) or {}
        uri = body.get("resource_uri") or response.headers.get("Location")
        if not uri:
            raise ApiError("POST", API + "run_log/", 201, "no resource_uri in answer")
        return uri

    def _find_existing(self):
        logs = self.client.get_json(
            API + "run_log/", {"run": self.run["id"]}, abort=self.abort
        )
        objects = (logs or {}).get("objects") or []
        return objects[0]["resource_uri"] if objects else None


class LiveLogReporter(threading.Thread):
    """Sends the log of a running script every few seconds, when it changed."""

    def __init__(self, writer, log_buffer, interval, run_id):
        super().__init__(name=f"run-{run_id}-log", daemon=True)
        self.writer = writer
        self.log_buffer = log_buffer
        self.interval = interval
        self._stop_requested = threading.Event()

    def run(self):
        sent_version = None
        while not self._stop_requested.wait(self.interval):
            version = self.log_buffer.version
            if version == sent_version:
                continue
            try:
                # No retries: the next update comes soon, the final one is
                # retried until it is stored.
                self.writer.write(self.log_buffer.render(), retry=False)
                sent_version = version
            except (TransientError, ApiError, RetryAborted) as error:
                log.warning("live log update failed: %s", error)

    def stop(self):
        self._stop_requested.set()
        self.join()


class Heartbeat(threading.Thread):
    """Pings every ping_interval on its own thread: a worker that is still
    settling an earlier start's runs, or cannot report one run, stays known
    as alive and keeps its other runs."""

    def __init__(self, worker_daemon):
        super().__init__(name="heartbeat", daemon=True)
        self.worker_daemon = worker_daemon
        self._stop_requested = threading.Event()

    def run(self):
        daemon = self.worker_daemon
        failures = 0
        while not self._stop_requested.is_set():
            _ok, transient = daemon._step(daemon.ping)
            if transient:
                delay = min(daemon.config.ping_interval, backoff_delay(failures))
                failures += 1
            else:
                delay = daemon.config.ping_interval
                failures = 0
            if self._stop_requested.wait(delay):
                return

    def stop(self):
        self._stop_requested.set()
        self.join()


class RunHandler(threading.Thread):
    """Executes one claimed run and reports it back to the server."""

    def __init__(self, worker_daemon, run):
        super().__init__(name=f"run-{run.get('id')}", daemon=True)
        self.worker_daemon = worker_daemon
        self.client = worker_daemon.client
        self.config = worker_daemon.config
        self.run_obj = run
        self.run_uri = run["resource_uri"]
        self.kill_event = threading.Event()
        self.pid = None
        self.started = False
        self._kill_requests = []
        self._closed = False
        self._lock = threading.Lock()

    # Called from the main thread.
    def request_kill(self, kill_request):
        """Take over a kill request; False when the run is past that point."""
        with self._lock:
            if self._closed:
                return False
            self._kill_requests.append(kill_request)
            self.kill_event.set()
            return True

    def _close_kill_requests(self):
        with self._lock:
            self._closed = True
            return list(self._kill_requests)

    def run(self):
        try:
            self._execute()
        except RetryAborted as error:
            log.warning("run %s abandoned: %s", self.run_uri, error)
        except Exception:
            log.exception("run %s: unexpected error; the run is given up", self.run_uri)
            if not self.started:
                # Never leave a claim held for a run that will not run here.
                self._release_claim()
        finally:
            self._close_kill_requests()
            self.worker_daemon.run_finished(self)

    def _patch_run(self, data):
        return self.client.request(
            "PATCH", self.run_uri, data=data, abort=self.worker_daemon.force_event
        )

    def _execute(self):
        force = self.worker_daemon.force_event
        run_id = self.run_obj.get("id")
        try:
            if isinstance(run_id, bool) or not isinstance(run_id, int):
                raise ApiError("GET", self.run_uri, 200, f"the run's id {run_id!r} is no integer")
            job = self.client.get_json(self.run_obj["job"], abort=force)
            if not isinstance(job, dict) or not isinstance(job.get("script_content"), str):
                raise ApiError("GET", str(self.run_obj["job"]), 200, "the job has no script_content")
        except (ApiError, KeyError, TypeError) as error:
            log.error("run %s: cannot handle it here, giving it back: %s", self.run_uri, error)
            self._release_claim()
            return
        script_content = job["script_content"]
        env = executor.script_environment(run_id, job.get("title"), self.config.api_base_url)

        log_buffer = LogBuffer(self.config.max_log_bytes)
        writer = RunLogWriter(self.client, self.run_obj, self.run_obj.get("run_log"), force)
        reporter = LiveLogReporter(
            writer, log_buffer, self.worker_daemon.log_update_interval, self.run_obj["id"]
        )
        start_dts = utc_now_iso()

        def on_started(pid):
            self.pid = pid
            self.started = True
            response = self._patch_run({"start_dts": start_dts, "pid": pid})
            if response.status_code not in (200, 202, 204):
                log.error(
                    "run %s: start refused (%s %s); killing the script and giving up",
                    self.run_uri, response.status_code, response.text[:300],
                )
                return False
            log.info("run %s started as pid %s", self.run_uri, pid)
            reporter.start()
            return True

        try:
            result = executor.run_script(
                script_content,
                self.config.script_temp_path,
                log_buffer,
                on_started=on_started,
                kill_event=self.kill_event,
                kill_grace_seconds=self.worker_daemon.kill_grace_seconds,
                script_prefix=f"jobrunner-run-{run_id}-",
                env=env,
            )
        finally:
            if reporter.is_alive():
                reporter.stop()
        # The run ended now, however long the server takes to hear of it.
        finished_dts = utc_now_iso()
        if result.abandoned:
            return

        if result.error is not None:
            log.warning("run %s could not start: %s", self.run_uri, result.error)
            log_buffer.write_line(NOTE_PREFIX + result.error)
            # A run is returned after it started; record when it tried to.
            response = self._patch_run({"start_dts": start_dts})
            if response.status_code not in (200, 202, 204):
                log.error(
                    "run %s: start refused (%s %s); giving up",
                    self.run_uri, response.status_code, response.text[:300],
                )
                return

        kill_requests = self._close_kill_requests()
        if result.killed:
            log_buffer.write_line(KILLED_NOTE)
        elif kill_requests:
            log_buffer.write_line(
                NOTE_PREFIX + "kill requested after the script had finished"
            )
        if result.error is None and result.exit_code != 0:
            log_buffer.write_line(
                NOTE_PREFIX + executor.describe_exit_code(result.exit_code)
            )
        for kill_request in kill_requests:
            self.worker_daemon.mark_kill_request_executed(
                kill_request, abort=force, execute_dts=finished_dts
            )

        try:
            writer.write(log_buffer.render())
        except ApiError as error:
            # The result matters more than its log: report it anyway.
            log.error("run %s: log not stored: %s", self.run_uri, error)

        self.worker_daemon.return_run(
            self.run_uri, result.success, abort=force, return_dts=finished_dts
        )

    def _release_claim(self):
        """Give the run back to the queue when it cannot be executed here."""
        try:
            response = self._patch_run({"enqueue_dts": None, "start_dts": None})
        except (RetryAborted, ApiError):
            return
        if response.status_code not in (200, 202, 204):
            log.error(
                "run %s: claim not released (%s %s)",
                self.run_uri, response.status_code, response.text[:300],
            )


class WorkerDaemon:
    """The worker's main loop (SPEC section 6).

    ``run()`` blocks until a stop is requested (``request_stop()``, or
    SIGTERM/SIGINT once ``install_signal_handlers()`` was called) and every
    running run has been reported; it returns the exit status.
    """

    def __init__(
        self,
        config,
        client=None,
        log_update_interval=LOG_UPDATE_INTERVAL_SECONDS,
        kill_grace_seconds=executor.KILL_GRACE_SECONDS,
    ):
        self.config = config
        self.client = client or ApiClient(
            config.api_base_url, config.api_key, config.secret, ca_bundle=config.ca_bundle
        )
        self.log_update_interval = log_update_interval
        self.kill_grace_seconds = kill_grace_seconds
        self.version = worker_version()
        self.worker = None
        # Set by the first SIGTERM/SIGINT: claim nothing more, finish, exit.
        self.stop_event = threading.Event()
        # Set by a second signal: stop retrying, kill the scripts, exit now.
        self.force_event = threading.Event()
        self._wake = threading.Event()
        self._handlers = {}
        self._kill_requests_taken = set()
        # Marked executed here, but perhaps still in a listing fetched just
        # before that was stored: acting on it again would move its
        # execute_dts past the run's return.
        self._kill_requests_done = set()
        self._lock = threading.Lock()

    # Control

    def request_stop(self):
        self.stop_event.set()
        self._wake.set()

    def request_force_stop(self):
        self.force_event.set()
        self.request_stop()

    def install_signal_handlers(self):
        def handle(signum, _frame):
            if self.stop_event.is_set():
                log.warning("%s again: killing running scripts and exiting",
                            signal.Signals(signum).name)
                self.request_force_stop()
            else:
                log.info("%s: claiming nothing more; waiting for %d running run(s)",
                         signal.Signals(signum).name, self.active_run_count)
                self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    @property
    def active_run_count(self):
        with self._lock:
            return len(self._handlers)

    def run_finished(self, handler):
        with self._lock:
            self._handlers.pop(handler.run_uri, None)
        self._wake.set()

    # Main loop

    def run(self):
        try:
            self.worker = self.fetch_own_worker()
        except RetryAborted:
            return 0
        except ApiError as error:
            log.error("cannot identify this worker to the server: %s", error)
            return 1
        log.info(
            "worker %s (%s) version %s, %d concurrent jobs",
            self.worker.get("title") or self.config.api_key,
            self.worker["resource_uri"], self.version, self.config.concurrent_jobs,
        )
        heartbeat = Heartbeat(self)
        heartbeat.start()
        try:
            try:
                self.recover()
            except RetryAborted:
                return 0
            except ApiError as error:
                log.error("settling runs left by an earlier start failed: %s", error)
            return self._loop()
        finally:
            heartbeat.stop()

    def _loop(self):
        failures = 0
        while True:
            self._wake.clear()
            if self.force_event.is_set():
                self._kill_all_scripts()
                return 1
            if self.stop_event.is_set() and self.active_run_count == 0:
                log.info("stopped")
                return 0
            transient = self._step(self.process_kill_requests)[1]
            if not self.stop_event.is_set():
                transient |= self._step(self.claim_runs)[1]
            if transient:
                delay = max(self.config.poll_interval, backoff_delay(failures))
                failures += 1
            else:
                delay = self.config.poll_interval
                failures = 0
            self._wake.wait(delay)

    def _step(self, action):
        """Run one duty of the loop; returns (succeeded, failed transiently)."""
        try:
            action()
            return True, False
        except TransientError as error:
            log.warning("server unavailable: %s", error)
            return False, True
        except RetryAborted:
            return False, False
        except ApiError as error:
            log.error("%s", error)
            return False, False

    def _kill_all_scripts(self):
        with self._lock:
            handlers = list(self._handlers.values())
        for handler in handlers:
            if handler.pid is not None:
                executor.signal_process_group(handler.pid, signal.SIGKILL)

    # Duties

    def fetch_own_worker(self):
        body = self.client.get_json(API + "worker/", abort=self.stop_event)
        objects = body.get("objects") if isinstance(body, dict) and "objects" in body else [body]
        for worker in objects:
            if worker and worker.get("api_key", self.config.api_key) == self.config.api_key:
                return worker
        raise ApiError("GET", API + "worker/", 200, "own worker object not in the answer")

    def ping(self, retry=False):
        response = self.client.request(
            "PATCH",
            self.worker["resource_uri"],
            data={
                "ping_response_dts": utc_now_iso(),
                "worker_version": self.version,
                "concurrent_jobs": self.config.concurrent_jobs,
            },
            retry=retry,
            abort=self.stop_event,
        )
        body = response_json(response, "PATCH", self.worker["resource_uri"], (200, 202, 204))
        if isinstance(body, dict):
            # The worker's URI stays the one it started with.
            self.worker = {**body, "resource_uri": self.worker["resource_uri"]}

    def recover(self):
        """Settle what an earlier process of this worker left behind."""
        key = self.config.api_key
        abort = self.stop_event
        for run in self.client.list_all(
            API + "run/", {"state": "in_queue", "worker__api_key": key}, abort=abort
        ):
            response = self.client.request(
                "PATCH", run["resource_uri"],
                data={"enqueue_dts": None, "start_dts": None}, abort=abort,
            )
            if response.status_code in (200, 202, 204):
                log.info("run %s was in queue here; put back", run["resource_uri"])
            else:
                log.error("run %s not put back: %s %s", run["resource_uri"],
                          response.status_code, response.text[:300])
        for run in self.client.list_all(
            API + "run/", {"state": "started", "worker__api_key": key}, abort=abort
        ):
            self._return_interrupted_run(run)

    def _return_interrupted_run(self, run):
        abort = self.stop_event
        run_log_uri = run.get("run_log")
        existing = ""
        try:
            if run_log_uri:
                existing = (self.client.get_json(run_log_uri, abort=abort) or {}).get(
                    "content") or ""
            writer = RunLogWriter(self.client, run, run_log_uri, abort)
            writer.write(append_within(existing, RESTARTED_NOTE, self.config.max_log_bytes))
        except ApiError as error:
            log.error("run %s: restart note not stored: %s", run["resource_uri"], error)
        self.return_run(run["resource_uri"], False, abort=abort)

    def return_run(self, run_uri, success, abort=None, return_dts=None):
        """PATCH the result, retried until the server answers."""
        response = self.client.request(
            "PATCH", run_uri,
            data={"return_dts": return_dts or utc_now_iso(), "return_success": bool(success)},
            abort=abort,
        )
        if response.status_code in (200, 202, 204):
            log.info("run %s returned (%s)", run_uri, "success" if success else "failure")
        elif response.status_code == 409:
            log.info("run %s had already been returned", run_uri)
        else:
            log.error("run %s: return refused, giving up: %s %s",
                      run_uri, response.status_code, response.text[:300])

    def claim_runs(self):
        free = self.config.concurrent_jobs - self.active_run_count
        if free <= 0:
            return
        page = self.client.get_json(
            API + "run/", {"state": "enqueueable", "limit": free}, retry=False
        )
        objects = page.get("objects") if isinstance(page, dict) else None
        for run in (objects if isinstance(objects, list) else [])[:free]:
            if self.stop_event.is_set():
                return
            if not isinstance(run, dict) or not isinstance(run.get("resource_uri"), str):
                log.warning("skipping an enqueueable entry without resource_uri: %r", run)
                continue
            try:
                claimed = self.claim(run)
            except ApiError as error:
                # One bad entry (a URL elsewhere, say) spoils no other claim.
                log.warning("not claiming %r: %s", run.get("resource_uri"), error)
                continue
            if claimed is not None:
                self._start(claimed)

    def claim(self, run):
        """Claim a run; returns the run object if it is ours now, else None."""
        run_uri = run["resource_uri"]
        data = {"enqueue_dts": utc_now_iso(), "worker": self.worker["resource_uri"]}
        answer_lost = False
        try:
            response = self.client.send_once("PATCH", run_uri, data=data)
        except TransientError as error:
            # The claim may have been made even though the answer was lost.
            log.warning("claim of %s unconfirmed: %s", run_uri, error)
            answer_lost = True
            response = self.client.request(
                "PATCH", run_uri, data=data, abort=self.stop_event
            )
        if response.status_code in (200, 202):
            log.info("claimed run %s", run_uri)
            body = response_json(response, "PATCH", run_uri)
            # The run stays the one claimed, whatever URI the answer names.
            return {**run, **(body if isinstance(body, dict) else {}), "resource_uri": run_uri}
        if response.status_code == 409:
            if answer_lost:
                current = self.client.get_json(run_uri, abort=self.stop_event)
                if self._is_claimed_here(current, data["enqueue_dts"]):
                    log.info("claimed run %s", run_uri)
                    return current
            log.debug("run %s taken by another worker", run_uri)
            return None
        log.warning("claim of %s refused: %s %s", run_uri,
                    response.status_code, response.text[:300])
        return None

    def _is_claimed_here(self, run, enqueue_dts):
        return (
            run.get("worker") == self.worker["resource_uri"]
            and run.get("start_dts") is None
            and run.get("return_dts") is None
            and parse_datetime(run.get("enqueue_dts")) == parse_datetime(enqueue_dts)
        )

    def _start(self, run):
        handler = RunHandler(self, run)
        with self._lock:
            self._handlers[handler.run_uri] = handler
        handler.start()

    def process_kill_requests(self):
        kill_requests = self.client.list_all(
            API + "kill_request/",
            {"run__worker__api_key": self.config.api_key, "execute_dts__isnull": "true"},
            retry=False,
        )
        with self._lock:
            # Once its execution is stored, a kill request leaves the listing.
            self._kill_requests_done &= {k["resource_uri"] for k in kill_requests}
        for kill_request in kill_requests:
            uri = kill_request["resource_uri"]
            with self._lock:
                if uri in self._kill_requests_taken or uri in self._kill_requests_done:
                    continue
                handler = self._handlers.get(kill_request["run"])
            if kill_request.get("enqueue_dts") is None:
                response = self.client.request(
                    "PATCH", uri, data={"enqueue_dts": utc_now_iso()}, retry=False
                )
                response_json(response, "PATCH", uri, (200, 202, 204))
            if handler is not None and handler.request_kill(kill_request):
                with self._lock:
                    self._kill_requests_taken.add(uri)
                log.info("killing run %s on request", kill_request["run"])
            else:
                # Nothing of that run is running here any more.
                self.mark_kill_request_executed(kill_request, retry=False)

    def mark_kill_request_executed(self, kill_request, retry=True, abort=None, execute_dts=None):
        uri = kill_request["resource_uri"]
        answered = False
        try:
            response = self.client.request(
                "PATCH", uri, data={"execute_dts": execute_dts or utc_now_iso()},
                retry=retry, abort=abort,
            )
            answered = True
            if response.status_code not in (200, 202, 204):
                log.error("kill request %s not marked executed: %s %s",
                          uri, response.status_code, response.text[:300])
        finally:
            with self._lock:
                self._kill_requests_taken.discard(uri)
                if answered:
                    self._kill_requests_done.add(uri)


def main(argv=None):
    config = config_from_command_line(argv)
    configure_logging(config.log_level)
    for warning in security_warnings(config):
        log.warning("%s", warning)
    daemon = WorkerDaemon(config)
    daemon.install_signal_handlers()
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main())
