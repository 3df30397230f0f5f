"""When a run counts as killed: its worker acted on a kill request for it
(picked it up or executed it). The failure mail and the dashboard both say
"killed" by this one rule."""
from sqlalchemy import exists, or_, select

from ..models import KillRequest


def acted_on():
    """SQL condition on KillRequest: its worker picked it up or executed it."""
    return or_(KillRequest.enqueue_dts.is_not(None), KillRequest.execute_dts.is_not(None))


def was_killed_clause(run_id):
    """SQL condition: the run `run_id` (a column or value) was killed."""
    return exists().where(KillRequest.run_id == run_id, acted_on())


def killed_run_ids(dbsession, run_ids):
    """The ids among ``run_ids`` of runs whose worker acted on a kill request."""
    run_ids = list(run_ids)
    if not run_ids:
        return set()
    return set(
        dbsession.scalars(
            select(KillRequest.run_id).where(KillRequest.run_id.in_(run_ids), acted_on()).distinct()
        )
    )
