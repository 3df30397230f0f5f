"""`POST /api/v1/run/claim/`: in one request a worker returns the runs it
has finished, and claims, and may start, due runs for its free slots,
waiting for them when none is due.

The body: `{"limit": N, "start": true, "wait": seconds, "returns": [...]}`
(only `limit` is required; 0 claims nothing). Each entry of `returns` is
the body of the PATCH that would return one run, with `run` naming it; each
is done as that PATCH does it (the same checks, the same life cycle) and
answered with the status that PATCH would get, one entry failing alone.
The returns are committed before the request waits.

`start` starts the runs found at once; runs that come due while the request
waits are only claimed (the worker may have been asked to stop in the
meantime, and a claimed run can still be given back).

The answer: `{"objects": [...], "returns": [...]}`: the runs claimed, each
as a run item with the job's `script_content`, `job_title` and
`job_timeout` beside it (as a single claim answers), and for each return
`{"resource_uri", "status"}` with `error` and `errors` when refused.
"""
import math

from pyramid.view import view_config
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..domain_errors import DomainError
from ..errors import domain_status
from ..models import Run, begin_write
from ..scheduling import runs
from ..scheduling.enqueueable import enqueueable_runs
from ..scheduling.mail import mail_context
from . import waiting
from .body import parse_json_body, validate
from ..security.permissions import Permission
from .errors import APIError, bad_request, forbidden
from .fields import parse_relation, resource_uri
from .serialize import serialize
from .traversal import Collection
from .views import check_write_scope, json_response, method_not_allowed, settings_of, timezone_of
from .writes import UPDATE

CLAIM_VIEW = "claim"
MAX_CLAIM = 1000
FIELDS = ("limit", "start", "wait", "returns")
# What a return carried by a claim may set: a return's own fields.
RETURN_FIELDS = ("run", "return_dts", "return_success", "pid", "timed_out", "log_content")


def claim_request(data):
    """(limit, start, wait, returns) of the body; a 400 naming each bad
    field, before anything is done."""
    errors = {name: "Not a field of a claim." for name in data if name not in FIELDS}
    limit = data.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_CLAIM:
        errors["limit"] = f"limit takes a whole number from 0 to {MAX_CLAIM}."
    start = data.get("start", False)
    if not isinstance(start, bool):
        errors["start"] = "start takes true or false."
    wait = data.get("wait")
    if wait is not None:
        seconds = wait if isinstance(wait, (int, float)) and not isinstance(wait, bool) else math.nan
        if not 0 < seconds <= waiting.MAX_WAIT_SECONDS:
            errors["wait"] = f"wait takes seconds, more than 0 and at most {waiting.MAX_WAIT_SECONDS:g}."
        else:
            wait = float(seconds)
    returns = data.get("returns", [])
    problem = returns_problem(returns)
    if problem:
        errors["returns"] = problem
    if errors:
        raise bad_request("Invalid fields.", errors)
    return limit, start, wait, returns


def returns_problem(returns):
    if not isinstance(returns, list) or len(returns) > MAX_CLAIM:
        return f"returns takes a list of at most {MAX_CLAIM} returns."
    for entry in returns:
        if not isinstance(entry, dict) or "return_dts" not in entry or entry.get("return_dts") is None:
            return "Each return is an object with run and return_dts."
        others = sorted(set(entry) - set(RETURN_FIELDS))
        if others:
            return f"A return sets only {', '.join(RETURN_FIELDS[1:])} (not {', '.join(others)})."
        try:
            parse_relation(entry.get("run"), "run")
        except ValueError:
            return "Each return names its run (a run URI or id)."
    return None


def return_one(request, collection, entry):
    """One return, as `PATCH` of the run does it, in a savepoint of its own:
    its refusal changes nothing and leaves the other returns alone."""
    rt = collection.resource_type
    run_id = parse_relation(entry["run"], "run")
    answer = {"resource_uri": resource_uri("run", run_id)}
    savepoint = request.dbsession.begin_nested()
    try:
        try:
            item = collection[str(run_id)]
        except KeyError:
            raise APIError(404, "Not found.")
        # What the PATCH's view permission asks of the caller first.
        if not request.has_permission(Permission.VIEW, item):
            raise forbidden()
        data = {name: value for name, value in entry.items() if name != "run"}
        values = validate(rt, data, timezone_of(request), obj=item.obj, settings=settings_of(request))
        UPDATE[rt.name](request, item, values)
        request.dbsession.flush()
    except (APIError, DomainError, IntegrityError) as error:
        savepoint.rollback()
        if isinstance(error, APIError):
            status, message, errors = error.status, error.message, error.errors
        elif isinstance(error, DomainError):
            status, message, errors = domain_status(error), error.message, error.errors
        else:
            status, message, errors = 409, "The change conflicts with the stored data.", {}
        return {**answer, "status": status, "error": message, "errors": errors}
    savepoint.commit()
    return {**answer, "status": 202}


@view_config(context=Collection, name=CLAIM_VIEW)
def claim_view(context, request):
    rt = context.resource_type
    if rt.name != "run":
        raise APIError(404, "Not found.")
    if request.method != "POST":
        method_not_allowed(request, ("post",))
    identity = request.identity
    worker = identity.worker if identity is not None else None
    if worker is None:
        raise APIError(403, "Only a worker claims runs.")
    check_write_scope(request, rt.name, "update")
    limit, start, wait, returns = claim_request(parse_json_body(request))
    # The returned runs, loaded in one statement as their items load them;
    # held while the returns are done, each return finds its run loaded.
    held = request.dbsession.scalars(
        select(Run).where(Run.id.in_({parse_relation(entry["run"], "run") for entry in returns}))
        .options(*rt.item_options())
    ).unique().all() if returns else []
    returned = [return_one(request, context, entry) for entry in returns]
    del held
    looks = []

    def claim_page():
        # Runs that came due while the request waited are claimed, not
        # started (see above).
        start_now = start and not looks
        looks.append(True)
        # Again after a wait, whose commit ended the writing transaction.
        begin_write(request.dbsession)
        if limit == 0:
            return {"objects": []}
        # The worker's enqueueable list, as GET ?state=enqueueable lists it.
        candidates = enqueueable_runs(rt.reach.narrow(select(Run.id, Run.job_id), identity), worker)
        claimed = runs.claim_due(
            request.dbsession, worker, candidates.order_by(Run.schedule_dts, Run.id), limit,
            context=mail_context(request), start=start_now,
        )
        settings = settings_of(request)
        return {"objects": [
            {**serialize(rt, run, settings), "script_content": job.script_content,
             "job_title": job.title, "job_timeout": job.timeout}
            for run, job in claimed
        ]}

    if wait is None or limit == 0:
        body = claim_page()
    else:
        body = waiting.list_waiting(request, wait, claim_page)
    return json_response(request, {**body, "returns": returned})
