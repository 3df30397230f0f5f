"""/jobs/<id>/runs: every run of a job, newest first, 50 a page.

Paging is by keyset (the last row's schedule_dts and id), never by offset:
the index on (job_id, schedule_dts) finds a page as fast in a history of a
million runs as in one of a thousand.
"""
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from pyramid.view import view_config
from sqlalchemy import and_, or_, select

from ..contexts import Missing, ObjectContext
from ..dashboard.views import frame, not_found_page
from ..models import Run, Worker, utcnow
from ..security.permissions import Permission

PAGE_SIZE = 50
RESULTS = ("any", "succeeded", "failed")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class BadFilter(ValueError):
    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


@dataclass
class Filters:
    result: str = "any"
    worker_id: int | None = None
    since: date | None = None
    until: date | None = None


def encode_cursor(schedule_dts, run_id):
    micros = (schedule_dts - EPOCH) // timedelta(microseconds=1)
    return f"{micros}.{run_id}"


def decode_cursor(text, field):
    try:
        micros, run_id = (int(part) for part in text.split("."))
        return EPOCH + timedelta(microseconds=micros), run_id
    except (ValueError, OverflowError):
        raise BadFilter(field, "Not a page of this list.") from None


def parse_filters(params):
    filters = Filters()
    result = params.get("result") or "any"
    if result not in RESULTS:
        raise BadFilter("result", "One of: any, succeeded, failed.")
    filters.result = result
    worker = params.get("worker") or ""
    if worker:
        if not (worker.isascii() and worker.isdigit()) or len(worker) > 9:
            raise BadFilter("worker", "A worker id.")
        filters.worker_id = int(worker)
    for name in ("since", "until"):
        text = params.get(name) or ""
        if text:
            try:
                setattr(filters, name, date.fromisoformat(text))
            except ValueError:
                raise BadFilter(name, "A date such as 2027-03-28.") from None
    return filters


def history_query(job_id, filters, tz):
    """The runs of a job matching the filters, newest first (no paging)."""
    query = (
        select(Run.id, Run.schedule_dts, Run.enqueue_dts, Run.start_dts, Run.return_dts,
               Run.return_success, Run.is_manual, Run.worker_id, Worker.title.label("worker_title"))
        .outerjoin(Worker, Worker.id == Run.worker_id)
        .where(Run.job_id == job_id)
    )
    if filters.result == "succeeded":
        query = query.where(Run.return_dts.is_not(None), Run.return_success.is_(True))
    elif filters.result == "failed":
        query = query.where(Run.return_dts.is_not(None), Run.return_success.is_not(True))
    if filters.worker_id is not None:
        query = query.where(Run.worker_id == filters.worker_id)
    if filters.since is not None:
        query = query.where(Run.schedule_dts >= datetime.combine(filters.since, time(), tz))
    if filters.until is not None:
        end = datetime.combine(filters.until + timedelta(days=1), time(), tz)
        query = query.where(Run.schedule_dts < end)
    return query


def history_page(dbsession, job_id, filters, tz, before=None, after=None, size=PAGE_SIZE):
    """(rows, newer, older): a page of runs and the cursors of the pages
    next to it (None where there is none)."""
    query = history_query(job_id, filters, tz)
    if after is not None:
        dts, run_id = after
        # The redundant bound on schedule_dts alone lets the index range start there.
        query = query.where(
            Run.schedule_dts >= dts,
            or_(Run.schedule_dts > dts, and_(Run.schedule_dts == dts, Run.id > run_id)),
        ).order_by(Run.schedule_dts, Run.id)
    else:
        if before is not None:
            dts, run_id = before
            query = query.where(
                Run.schedule_dts <= dts,
                or_(Run.schedule_dts < dts, and_(Run.schedule_dts == dts, Run.id < run_id)),
            )
        query = query.order_by(Run.schedule_dts.desc(), Run.id.desc())
    rows = dbsession.execute(query.limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    if after is not None:
        rows.reverse()
    first = encode_cursor(rows[0].schedule_dts, rows[0].id) if rows else None
    last = encode_cursor(rows[-1].schedule_dts, rows[-1].id) if rows else None
    newer = first if (before is not None or (after is not None and more)) else None
    older = last if (after is not None or more) else None
    return rows, newer, older


def describe(row, now):
    """State, result and duration of a run, as the page shows them."""
    if row.return_dts is not None:
        state = "succeeded" if row.return_success else "failed"
        duration = row.return_dts - row.start_dts if row.start_dts else None
    elif row.start_dts is not None:
        state, duration = "started", now - row.start_dts
    elif row.enqueue_dts is not None:
        state, duration = "in queue", None
    else:
        state, duration = "scheduled", None
    return state, duration


def format_duration(duration):
    if duration is None:
        return ""
    seconds = max(duration.total_seconds(), 0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


@view_config(route_name="job_runs", context=Missing, request_method="GET", permission=Permission.VIEW)
def missing_job(request):
    return not_found_page(request)


@view_config(route_name="job_runs", context=ObjectContext, request_method="GET",
             permission=Permission.VIEW, renderer="jobrunner:admin_pages/templates/history.jinja2")
def job_runs(context, request):
    job = context.obj
    tz = request.registry.jobrunner_settings.tz
    error = None
    try:
        filters = parse_filters(request.GET)
        before = decode_cursor(request.GET["before"], "before") if request.GET.get("before") else None
        after = decode_cursor(request.GET["after"], "after") if request.GET.get("after") else None
        rows, newer, older = history_page(request.dbsession, job.id, filters, tz, before, after)
    except BadFilter as exc:
        request.response.status = 400
        error = exc
        filters, rows, newer, older = Filters(), [], None, None
    now = utcnow()
    runs = []
    for row in rows:
        state, duration = describe(row, now)
        runs.append({"row": row, "state": state, "duration": format_duration(duration)})
    workers = sorted(job.worker_pool.workers, key=lambda w: (w.title, w.id))
    query = {k: v for k, v in request.GET.items() if k not in ("before", "after") and v}
    return frame(
        request, "history", job=job, project=job.job_template.project, runs=runs, filters=filters,
        workers=workers, newer=newer, older=older, query=query, error=error, tz=tz,
        results=RESULTS, page_size=PAGE_SIZE,
    )
