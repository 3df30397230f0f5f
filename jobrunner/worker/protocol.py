"""What a worker says to the server and what it accepts in return: the API
paths, the query parameters, the request bodies and the status codes.

The worker changes a run only through PATCH on the run's resource: a claim
sets the run's queue time and worker, a release clears the queue and start
times (the run goes back to its pool), a start sets the start time and the
script's pid, a return sets the return time and whether it succeeded.
Datetimes travel as ISO 8601 strings with an offset.
"""

from .client import parse_datetime

API = "/api/v1/"
WORKERS = API + "worker/"
RUNS = API + "run/"
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


def enqueueable_runs(limit):
    """The runs this worker may claim now, at most `limit` of them."""
    return {"state": "enqueueable", "limit": limit}


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
    """The script started as `pid`; without a pid, the start time of a run
    whose script could not start (a run is returned only after it started)."""
    body = {"start_dts": start_dts}
    if pid is not None:
        body["pid"] = pid
    return body


def return_body(return_dts, success, timed_out=False):
    body = {"return_dts": return_dts, "return_success": bool(success)}
    if timed_out:
        # Sent only when true: a server without timeouts never sees it.
        body["timed_out"] = True
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
