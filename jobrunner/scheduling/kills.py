"""When a run counts as killed: its worker acted on a kill request for it
(picked it up or executed it). The failure mail and the dashboard both say
"killed" by this one rule."""
from sqlalchemy import or_, select

from ..models import KillRequest


def acted_on():
    """SQL condition on KillRequest: its worker picked it up or executed it."""
    return or_(KillRequest.enqueue_dts.is_not(None), KillRequest.execute_dts.is_not(None))


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
