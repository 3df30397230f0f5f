"""What a worker says to the server and what it accepts in return: the API
paths, the query parameters, the request bodies and the status codes.

The worker changes a run only through PATCH on the run's resource: a claim
sets the run's queue time and worker, a release clears the queue and start
times (the run goes back to its pool), a start sets the start time and the
script's pid, a return sets the return time and whether it succeeded.
Datetimes travel as ISO 8601 strings with an offset.

The fast path: extensions of the server that save requests and waiting,
each used until the server refuses it once (an older server), then left
for the original steps. `FastPath` is the one place that decides:

* `wait` on the enqueueable list: the server answers when a run is due
  instead of the worker listing every poll_interval;
* the job's script in the claim's answer, instead of a GET of the job;
* the final log in the return, instead of a POST or PATCH of the run's log;
* several runs claimed, and started, in one request (`POST run/claim/`),
  instead of a list, a claim and a start for each.
"""

import threading

from .client import parse_datetime

API = "/api/v1/"
WORKERS = API + "worker/"
RUNS = API + "run/"
RUN_CLAIM = RUNS + "claim/"
RUN_LOGS = API + "run_log/"
KILL_REQUESTS = API + "kill_request/"

# A change the server stored: 200 or 202 with the object, or 204 without.
UPDATED = (200, 202, 204)
# A claim the server granted: the run comes back with the claim in it.
CLAIMED = (200, 202)
CREATED = (201,)
# Someone else was first: another worker claimed the run, or it was returned.
CONFLICT = 409
# What the server says of a report on a run that is no longer this worker's:
# another holds it (403), or it was returned without us (409), say by the
# scheduler for a worker it gave up on.
NOT_OURS = (403, 409)


# --- queries -----------------------------------------------------------------------


def enqueueable_runs(limit, wait=None):
    """The runs this worker may claim now, at most `limit` of them; with
    `wait`, the server holds an empty answer up to that many seconds."""
    params = {"state": "enqueueable", "limit": limit}
    if wait:
        params["wait"] = f"{wait:g}"
    return params


def claim_due_body(limit, wait=None, returns=()):
    """Claim and start up to `limit` due runs, after the `returns` (each the
    body of a run's return, with `run` naming it); with `wait`, the server
    holds an empty answer up to that many seconds."""
    body = {"limit": limit, "start": True}
    if wait:
        body["wait"] = wait
    if returns:
        body["returns"] = list(returns)
    return body


def own_runs(state, api_key):
    """This worker's runs in `state` ("in_queue" or "started")."""
    return {"state": state, "worker__api_key": api_key}


def logs_of_run(run_id):
    return {"run": run_id}


def pending_kill_requests(api_key):
    """Kill requests for this worker's runs that are not executed yet."""
    return {"run__worker__api_key": api_key, "execute_dts__isnull": "true"}


# --- bodies ---------------------------------------------------------------------------


def ping_body(ping_dts, worker_version, concurrent_jobs):
    return {
        "ping_response_dts": ping_dts,
        "worker_version": worker_version,
        "concurrent_jobs": concurrent_jobs,
    }


def claim_body(worker_uri, enqueue_dts):
    return {"enqueue_dts": enqueue_dts, "worker": worker_uri}


def release_body():
    """Gives a claimed run back to its pool's queue."""
    return {"enqueue_dts": None, "start_dts": None}


def start_body(start_dts, pid=None):
    """The run starts now (the project's worker reports it before the
    script runs, and the pid on its own or with the return)."""
    body = {"start_dts": start_dts}
    if pid is not None:
        body["pid"] = pid
    return body


def pid_body(pid):
    return {"pid": pid}


def return_body(return_dts, success, timed_out=False, log_content=None, pid=None):
    body = {"return_dts": return_dts, "return_success": bool(success)}
    if pid is not None:
        # The pid of a script that ended before it was reported on its own.
        body["pid"] = pid
    if timed_out:
        # Sent only when true: a server without timeouts never sees it.
        body["timed_out"] = True
    if log_content is not None:
        body["log_content"] = log_content
    return body


def new_log_body(run_uri, content):
    return {"run": run_uri, "content": content}


def log_update_body(content):
    return {"content": content}


def kill_request_enqueued_body(enqueue_dts):
    """This worker has seen the kill request."""
    return {"enqueue_dts": enqueue_dts}


def kill_request_executed_body(execute_dts):
    return {"execute_dts": execute_dts}


# --- answers --------------------------------------------------------------------------


def is_claimed_by(run, worker_uri, enqueue_dts):
    """Whether the server's copy of a run shows this worker's claim made at
    `enqueue_dts` (to tell, after a lost answer, whether the claim was made)."""
    return (
        run.get("worker") == worker_uri
        and run.get("start_dts") is None
        and run.get("return_dts") is None
        and parse_datetime(run.get("enqueue_dts")) == parse_datetime(enqueue_dts)
    )


def _refused_field(response, name):
    """Whether the server answered 400 naming `name`: it does not know it."""
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    errors = body.get("errors") if isinstance(body, dict) else None
    return isinstance(errors, dict) and name in errors


# --- the fast path -----------------------------------------------------------------

# Longer than any wait, so the server answers before the worker gives up.
WAIT_READ_MARGIN_SECONDS = 15.0


class FastPath:
    """Which extensions this worker uses; shared by its threads. Each is
    given up for good when the server first refuses it."""

    def __init__(self, poll_wait):
        self._lock = threading.Lock()
        self.list_wait = poll_wait or None
        self.log_in_return = True
        self.claim_due = True

    def list_timeout(self, default):
        """The read timeout of an enqueueable list."""
        wait = self.list_wait
        return max(default, wait + WAIT_READ_MARGIN_SECONDS) if wait else default

    def wait_refused(self, response):
        """True (and the wait given up) when the server refused `wait`."""
        if self.list_wait and _refused_field(response, "wait"):
            with self._lock:
                self.list_wait = None
            return True
        return False

    def claim_due_refused(self, response):
        """True (and the claim of several runs given up) when the server
        does not have it: no such URL (404, 405), or a body it refused
        (400). Nothing was claimed."""
        if self.claim_due and response.status_code in (400, 404, 405):
            with self._lock:
                self.claim_due = False
            return True
        return False

    def log_content_refused(self, response):
        """True (and the log in the return given up) when the server
        refused `log_content`: it stored nothing of that return."""
        if self.log_in_return and _refused_field(response, "log_content"):
            with self._lock:
                self.log_in_return = False
            return True
        return False


def job_in_claim(answer):
    """What the claim's answer says of the run's job, when it carries the
    job's script (and its title and timeout beside it); else None, and the
    job is fetched as in the original steps."""
    if not isinstance(answer, dict) or not isinstance(answer.get("script_content"), str):
        return None
    if "job_title" not in answer or "job_timeout" not in answer:
        return None
    return {
        "script_content": answer["script_content"],
        "title": answer["job_title"],
        "timeout": answer["job_timeout"],
    }
