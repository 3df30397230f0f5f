"""One claimed run on the worker: fetch its job, execute the script, report
the start, the log and the result back to the server.

The log is sent while the script runs (every few seconds, when it changed)
and once more at the end: in the return itself where the server takes it
(protocol.FastPath), else before the return, and then a run's result
matters more than its log, so a log the server refuses does not hold back
the return.
"""

import logging
import signal
import threading
import time
from datetime import datetime, timedelta

from . import executor, protocol
from .client import ApiError, RetryAborted, TransientError, response_json
from .logbuffer import LogBuffer

log = logging.getLogger("jobrunner.worker")

# How often the log of a running script is sent to the server.
LOG_UPDATE_INTERVAL_SECONDS = 2.0
NOTE_PREFIX = "[jobrunner-worker] "
KILLED_NOTE = NOTE_PREFIX + "killed on request"
RESTARTED_NOTE = (
    NOTE_PREFIX + "the worker restarted while this run was going on; "
    "the run is returned as failed"
)


# A script still running after this long gets its pid reported on its own;
# a shorter one's pid goes with the return.
PID_REPORT_DELAY_SECONDS = 1.0


def timed_out_line(timeout):
    """The last line of the log of a run killed for its job's timeout."""
    return f"[timed out after {timeout:g} s]"


def return_run(client, run_uri, success, abort=None, return_dts=None, timed_out=False,
               log_content=None, fast_path=None, pid=None):
    """Report a run's result, retried until the server answers. A run that
    was returned already (by the scheduler, for a worker it gave up on) is
    left as it is.

    With `log_content` the final log travels in the return; False when the
    server refused that return (an older server, a log it will not take):
    nothing was stored, and the caller writes the log and returns the
    original way, where a refused log does not hold back the return."""
    response = client.request(
        "PATCH", run_uri,
        data=protocol.return_body(return_dts or client.now_iso(), success, timed_out, log_content, pid),
        abort=abort,
    )
    if log_content is not None and response.status_code not in (*protocol.UPDATED, protocol.CONFLICT):
        if fast_path is not None and fast_path.log_content_refused(response):
            log.info("the server takes no log in the return; writing the log first from now on")
        else:
            log.warning("run %s: return with its log refused (%s %s); trying without",
                        run_uri, response.status_code, response.text[:300])
        return False
    if not settled_return(run_uri, response.status_code, success):
        log.error("run %s: return refused, giving up: %s %s",
                  run_uri, response.status_code, response.text[:300])
    return True


def settled_return(run_uri, status, success):
    """Whether the server's `status` for a run's return settles it (logged
    here): stored, returned already, or no longer this worker's."""
    if status in protocol.UPDATED:
        log.info("run %s returned (%s)", run_uri, "success" if success else "failure")
    elif status == protocol.CONFLICT:
        # By the scheduler, or by this worker when an answer was lost.
        log.info("run %s had already been returned", run_uri)
    elif status == 403:
        log.warning("run %s is no longer this worker's (return refused: 403); "
                    "its result stays as the server has it", run_uri)
    else:
        return False
    return True


def release_run(client, run_uri, abort=None):
    """Give a claimed run back to its pool's queue; True when the server took it."""
    response = client.request("PATCH", run_uri, data=protocol.release_body(), abort=abort)
    if response.status_code in protocol.UPDATED:
        return True
    log.error("run %s: claim not released (%s %s)",
              run_uri, response.status_code, response.text[:300])
    return False


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
                    protocol.RUN_LOGS,
                    protocol.new_log_body(self.run["resource_uri"], content),
                    retry,
                )
                if response.status_code in protocol.CREATED:
                    self.run_log_uri = self._created_uri(response)
                    return
                # A POST retried after a lost answer, or a log made by an
                # earlier worker process: the log exists, find it.
                self.run_log_uri = self._find_existing()
                if self.run_log_uri is None:
                    response_json(response, "POST", protocol.RUN_LOGS, protocol.CREATED)
            response = self._request(
                "PATCH", self.run_log_uri, protocol.log_update_body(content), retry
            )
            response_json(response, "PATCH", self.run_log_uri, protocol.UPDATED)

    def _request(self, method, path, data, retry):
        return self.client.request(method, path, data=data, retry=retry, abort=self.abort)

    def _created_uri(self, response):
        body = response_json(response, "POST", protocol.RUN_LOGS, protocol.CREATED) or {}
        uri = body.get("resource_uri") or response.headers.get("Location")
        if not uri:
            raise ApiError("POST", protocol.RUN_LOGS, 201, "no resource_uri in answer")
        return uri

    def _find_existing(self):
        logs = self.client.get_json(
            protocol.RUN_LOGS, protocol.logs_of_run(self.run["id"]), abort=self.abort
        )
        objects = (logs or {}).get("objects") or []
        return objects[0]["resource_uri"] if objects else None


class LiveLogReporter(threading.Thread):
    """Sends the log of a running script while it runs: the first output at
    once, later output batched into one update per ``interval``."""

    def __init__(self, writer, log_buffer, interval, run_id, on_refused=None):
        super().__init__(name=f"run-{run_id}-log", daemon=True)
        self.writer = writer
        self.log_buffer = log_buffer
        self.interval = interval
        # Called with the status when the server says the run is not ours.
        self.on_refused = on_refused
        self._stop_requested = threading.Event()

    def run(self):
        sent_version = 0  # a buffer nothing was written to
        stopping = self._stop_requested.is_set
        while not stopping():
            version = self.log_buffer.wait_for_change(sent_version, self.interval, until=stopping)
            if stopping():
                break
            if version == sent_version:
                continue
            try:
                # No retries: the next update comes soon, the final one is
                # retried until it is stored.
                self.writer.write(self.log_buffer.render(), retry=False)
                sent_version = version
            except (TransientError, ApiError, RetryAborted) as error:
                log.warning("live log update failed: %s", error)
                if (isinstance(error, ApiError) and error.status in protocol.NOT_OURS
                        and self.on_refused is not None):
                    self.on_refused(f"log update refused: {error.status}")
                    return
            # What follows is batched: at most one update per interval.
            self._stop_requested.wait(self.interval)

    def stop(self):
        self._stop_requested.set()
        self.log_buffer.wake()
        self.join()


class RunHandler(threading.Thread):
    """Executes one claimed run and reports it back to the server.

    `worker_daemon` is the loop that started it: the handler uses its
    client, configuration and stop events, tells it when the run is done and
    lets it mark the run's kill requests executed.
    """

    def __init__(self, worker_daemon, run, started=False):
        """`started`: the server stored the run's start already (the claim
        started it), so the script runs without a start report."""
        super().__init__(name=f"run-{run.get('id')}", daemon=True)
        self.worker_daemon = worker_daemon
        self.client = worker_daemon.client
        self.config = worker_daemon.config
        self.run_obj = run
        self.run_uri = run["resource_uri"]
        self.kill_event = threading.Event()
        self.pid = None
        self.pid_reported = False
        self.started = started
        self.started_by_claim = started
        # When the server confirmed the start (time.monotonic()), and
        # whether the script has ended: the daemon's check of its started
        # runs judges only runs the server has seen start and that still run.
        self.start_confirmed_at = time.monotonic() if started else None
        self.script_done = False
        # Why the server no longer counts the run as ours, once it said so.
        self.fenced = None
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

    def fence(self, reason):
        """The server no longer counts this run as ours (it was failed by
        the scheduler, say): its script's process group is killed at once,
        and nothing more of the run is reported. False when the script had
        ended already."""
        with self._lock:
            if self.fenced is not None or self.script_done:
                return False
            self.fenced = reason
            pid = self.pid
        if pid is not None:
            executor.signal_process_group(pid, signal.SIGKILL)
        self.kill_event.set()
        log.error("run %s is no longer this worker's (%s): killed its process group %s",
                  self.run_uri, reason, pid)
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
                self._release()
        finally:
            self._close_kill_requests()
            self.worker_daemon.run_finished(self)

    def _finished_dts(self):
        """Now, in the server's time. A run the claim started has its start
        by the server's own clock: its end is that start plus the time gone
        by here (the monotonic clock), so its duration is true even where
        this worker's estimate of the server's clock is a second off."""
        if self.started_by_claim:
            try:
                start = datetime.fromisoformat(self.run_obj.get("start_dts"))
            except (TypeError, ValueError):
                start = None
            if start is not None and start.tzinfo is not None:
                elapsed = time.monotonic() - self.start_confirmed_at
                return (start + timedelta(seconds=elapsed)).isoformat(timespec="microseconds")
        return self.client.now_iso()

    def _report_start(self, start_dts):
        """True when the server stored the start. It is stored before the
        script runs: a run the server has not seen start is freed for
        another worker when its holder stops answering, so a script
        started first could run twice."""
        response = self.client.request(
            "PATCH", self.run_uri, data=protocol.start_body(start_dts),
            abort=self.worker_daemon.force_event,
        )
        if response.status_code in protocol.UPDATED:
            self.start_confirmed_at = time.monotonic()
            self.started = True
            return True
        if response.status_code in protocol.NOT_OURS:
            log.error("run %s is no longer this worker's (start refused: %s); not running it",
                      self.run_uri, response.status_code)
            return False
        log.error("run %s: start refused (%s %s); giving it back",
                  self.run_uri, response.status_code, response.text[:300])
        self._release()
        return False

    def _report_pid(self, pid):
        """The pid of a script that runs for a while; a short one's pid goes
        with its return instead (one request less per run)."""
        with self._lock:
            if self.script_done or self.fenced is not None:
                return
        response = self.client.request(
            "PATCH", self.run_uri, data=protocol.pid_body(pid), abort=self.worker_daemon.force_event,
        )
        if response.status_code in protocol.UPDATED:
            self.pid_reported = True
        elif response.status_code in protocol.NOT_OURS:
            self.fence(f"pid refused: {response.status_code}")

    def _release(self):
        try:
            release_run(self.client, self.run_uri, abort=self.worker_daemon.force_event)
        except (RetryAborted, ApiError):
            pass

    def _give_up_started(self, reason):
        """Return a started run that cannot run here as failed, with why."""
        abort = self.worker_daemon.force_event
        try:
            if not return_run(self.client, self.run_uri, False, abort=abort,
                              log_content=NOTE_PREFIX + reason + "\n"):
                return_run(self.client, self.run_uri, False, abort=abort)
        except (RetryAborted, ApiError):
            pass

    def _execute(self):
        force = self.worker_daemon.force_event
        run_id = self.run_obj.get("id")
        try:
            # Only an integer id goes into the script's file name.
            if isinstance(run_id, bool) or not isinstance(run_id, int):
                raise ApiError("GET", self.run_uri, 200, f"the run's id {run_id!r} is no integer")
            # The fast path's claim answer carries the job; else fetch it.
            job = protocol.job_in_claim(self.run_obj) or self.client.get_json(
                self.run_obj["job"], abort=force)
            if not isinstance(job, dict) or not isinstance(job.get("script_content"), str):
                raise ApiError("GET", str(self.run_obj["job"]), 200, "the job has no script_content")
        except (ApiError, KeyError, TypeError) as error:
            if self.started:
                # Started already: it cannot go back to the queue.
                log.error("run %s: cannot handle it here, returning it failed: %s",
                          self.run_uri, error)
                self._give_up_started(f"the worker could not run it: {error}")
            else:
                log.error("run %s: cannot handle it here, giving it back: %s", self.run_uri, error)
                self._release()
            return
        script_content = job["script_content"]
        env = executor.script_environment(run_id, job.get("title"), self.config.api_base_url)
        timeout = job.get("timeout")
        timed_out = threading.Event()
        timers = []

        def time_out():
            timed_out.set()
            self.kill_event.set()

        log_buffer = LogBuffer(self.config.max_log_bytes)
        writer = RunLogWriter(self.client, self.run_obj, self.run_obj.get("run_log"), force)
        reporter = LiveLogReporter(
            writer, log_buffer, self.worker_daemon.log_update_interval, self.run_obj["id"],
            on_refused=self.fence,
        )
        if not self.started and not self._report_start(self.client.now_iso()):
            return

        def on_started(pid):
            with self._lock:
                self.pid = pid
                fenced = self.fenced is not None
            if fenced:
                return False
            log.info("run %s started as pid %s", self.run_uri, pid)
            reporter.start()
            pid_timer = threading.Timer(PID_REPORT_DELAY_SECONDS, self._report_pid, (pid,))
            pid_timer.daemon = True
            timers.append(pid_timer)
            pid_timer.start()
            if timeout:
                timer = threading.Timer(timeout, time_out)
                timer.daemon = True
                timers.append(timer)
                timer.start()
            return True

        try:
            result = executor.run_script(
                script_content,
                self.config.script_temp_path,
                log_buffer,
                on_started=on_started,
                kill_event=self.kill_event,
                kill_grace_seconds=(executor.TIMEOUT_KILL_GRACE_SECONDS if timeout
                                    else self.worker_daemon.kill_grace_seconds),
                script_prefix=f"jobrunner-run-{run_id}-",
                env=env,
            )
        finally:
            with self._lock:
                self.script_done = True
            for timer in timers:
                timer.cancel()
            if reporter.is_alive():
                reporter.stop()
        # The run ended now, however long the server takes to hear of it.
        finished_dts = self._finished_dts()
        if result.abandoned:
            return
        if self.fenced is not None:
            # Its log and result are the server's now (the scheduler's reason).
            log.warning("run %s: its script ended after the kill; nothing reported",
                        self.run_uri)
            return

        if result.error is not None:
            log.warning("run %s could not start: %s", self.run_uri, result.error)
            log_buffer.write_line(NOTE_PREFIX + result.error)

        kill_requests = self._close_kill_requests()
        was_timed_out = result.killed and timed_out.is_set() and not kill_requests
        if result.killed and not was_timed_out:  # a timeout is said in the last line
            log_buffer.write_line(KILLED_NOTE)
        elif kill_requests:
            log_buffer.write_line(
                NOTE_PREFIX + "kill requested after the script had finished"
            )
        if result.error is None and result.exit_code != 0:
            log_buffer.write_line(
                NOTE_PREFIX + executor.describe_exit_code(result.exit_code)
            )
        if was_timed_out:
            log_buffer.write_line(timed_out_line(timeout))
        for kill_request in kill_requests:
            self.worker_daemon.mark_kill_request_executed(
                kill_request, abort=force, execute_dts=finished_dts
            )

        content = log_buffer.render()
        fast_path = self.worker_daemon.fast_path
        pid = result.pid if not self.pid_reported else None
        if fast_path.log_in_return:
            # With the claimer's next request, where it takes it along.
            answer = self.worker_daemon.return_with_claim(self.run_uri, protocol.return_body(
                finished_dts, result.success, was_timed_out, content, pid))
            if answer is not None and settled_return(self.run_uri, answer["status"], result.success):
                return
            if return_run(self.client, self.run_uri, result.success, abort=force,
                          return_dts=finished_dts, timed_out=was_timed_out, log_content=content,
                          fast_path=fast_path, pid=pid):
                return
        try:
            writer.write(content)
        except ApiError as error:
            log.error("run %s: log not stored: %s", self.run_uri, error)

        return_run(self.client, self.run_uri, result.success, abort=force, return_dts=finished_dts,
                   timed_out=was_timed_out, pid=pid)
