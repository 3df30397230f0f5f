"""Failed logins: counted in the database, so that every server process
refuses a password-guessing run, per username and per client address."""
from datetime import timedelta

from sqlalchemy import delete, func, select

from ..models import utcnow
from ..models.security import LoginFailure

WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 50
MAX_ADDRESS_LENGTH = 64
MAX_USERNAME_LENGTH = 150


class TooManyFailures(Exception):
    """Logins are refused until `retry_after` (an aware datetime)."""

    def __init__(self, retry_after):
        super().__init__(f"Too many failed logins; try again after {retry_after:%H:%M} UTC.")
        self.retry_after = retry_after


def _key(username, client_addr):
    # PostgreSQL refuses NUL in text; no real username holds one anyway.
    username = username.replace("\x00", "")
    return username[:MAX_USERNAME_LENGTH], (client_addr or "unknown")[:MAX_ADDRESS_LENGTH]


def check_allowed(dbsession, username, client_addr, now=None):
    """Raises TooManyFailures when one more failure would pass a limit."""
    now = now or utcnow()
    username, client_addr = _key(username, client_addr)
    since = now - WINDOW
    for column, value, limit in (
        (LoginFailure.username, username, MAX_FAILURES_PER_USERNAME),
        (LoginFailure.client_addr, client_addr, MAX_FAILURES_PER_ADDRESS),
    ):
        count, oldest = dbsession.execute(
            select(func.count(), func.min(LoginFailure.dts)).where(
                column == value, LoginFailure.dts >= since
            )
        ).one()
        if count >= limit:
            # The window slides: the oldest counted failure leaves it first.
            raise TooManyFailures(max(oldest + WINDOW, now + timedelta(seconds=1)))


def record_failure(dbsession, username, client_addr, now=None):
    now = now or utcnow()
    username, client_addr = _key(username, client_addr)
    # Failures older than the window count for nothing: keep the table small.
    dbsession.execute(delete(LoginFailure).where(LoginFailure.dts < now - WINDOW))
    dbsession.add(LoginFailure(username=username, client_addr=client_addr, dts=now))
    dbsession.flush()
