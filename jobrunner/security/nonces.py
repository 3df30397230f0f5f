"""The nonces of v2-signed requests, remembered in the database so that no
server process accepts one request twice."""
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from ..models import begin_write, utcnow
from ..models.security import RequestNonce
from ..signing import MAX_SKEW_SECONDS

# A nonce is kept while a request carrying it could still be fresh: the
# timestamp may lie up to the skew ahead of the server's clock, and as much
# behind; a little more covers clocks that step.
KEEP = timedelta(seconds=2 * MAX_SKEW_SECONDS + 60)


def remember_nonce(session_factory, worker_id, nonce):
    """True the first time; False when the worker used the nonce before.

    Its own short transaction, committed at once: the nonce must stay used
    even when the request it came with is refused and rolled back (a
    refused claim could succeed when replayed later).
    """
    dbsession = session_factory()
    try:
        begin_write(dbsession)
        now = utcnow()
        dbsession.execute(
            delete(RequestNonce).where(
                RequestNonce.worker_id == worker_id, RequestNonce.seen_dts < now - KEEP
            )
        )
        dbsession.add(RequestNonce(worker_id=worker_id, nonce=nonce, seen_dts=now))
        dbsession.commit()
        return True
    except IntegrityError:
        dbsession.rollback()
        return False
    finally:
        dbsession.close()
