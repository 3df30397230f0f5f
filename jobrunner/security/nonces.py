"""The nonces of v2-signed requests, remembered in the database so that no
server process accepts one request twice."""
import time
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from ..models import begin_write, utcnow
from ..models.security import RequestNonce
from ..signing import MAX_SKEW_SECONDS

# A nonce is kept while a request carrying it could still be fresh: the
# timestamp may lie up to the skew ahead of the server's clock, and as much
# behind; a little more covers clocks that step.
KEEP = timedelta(seconds=2 * MAX_SKEW_SECONDS + 60)
# Old nonces are deleted by one request in this many seconds, not by each.
PRUNE_EVERY = 30.0
_last_prune = [0.0]

_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def remember_nonce(session_factory, worker_id, nonce):
    """True the first time; False when the worker used the nonce before.

    One INSERT ... ON CONFLICT DO NOTHING in its own short transaction,
    committed at once: the nonce must stay used even when the request it
    came with is refused and rolled back (a refused claim could succeed
    when replayed later), and a reading request must not hold SQLite's
    write lock for its whole length.
    """
    dbsession = session_factory()
    try:
        begin_write(dbsession)
        now = utcnow()
        insert = _INSERT[dbsession.get_bind().dialect.name]
        # RETURNING says whether the row went in (a rowcount is not reliable
        # across drivers for ON CONFLICT).
        stored = dbsession.execute(
            insert(RequestNonce.__table__)
            .values(worker_id=worker_id, nonce=nonce, seen_dts=now)
            .on_conflict_do_nothing()
            .returning(RequestNonce.worker_id)
        ).first()
        if time.monotonic() - _last_prune[0] > PRUNE_EVERY:
            _last_prune[0] = time.monotonic()
            dbsession.execute(delete(RequestNonce.__table__).where(RequestNonce.seen_dts < now - KEEP))
        dbsession.commit()
        return stored is not None
    finally:
        dbsession.close()
