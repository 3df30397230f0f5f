"""Time on the worker: the server's clock as the worker learns it, and
pauses that do not depend on the wall clock."""

import datetime
import email.utils
import logging
import threading
import time

log = logging.getLogger("jobrunner.worker")


def utc_now_iso(offset=0.0):
    """Now (moved by `offset` seconds) as ISO 8601 with offset and
    microseconds, as the API expects."""
    now = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    return now.isoformat(timespec="microseconds")


# Slack around what an answer's Date header allows the offset to be.
CLOCK_TOLERANCE_SECONDS = 1.0


class ServerClock:
    """The server's clock as seen from here: the worker's own clock plus an
    offset learned from the Date header of each answer.

    Every time the worker reports (pings, claims, starts, returns) and the
    timestamp it signs are in the server's time: a worker whose clock is off
    is neither called unresponsive nor refused for a stale signature, and
    the durations the dashboard shows are true."""

    def __init__(self):
        self.offset = 0.0

    def time(self):
        return time.time() + self.offset

    def now_iso(self):
        return utc_now_iso(self.offset)

    def learn(self, date_header, sent_at, received_at):
        """Takes the offset from an answer's Date header, sent between the
        local times `sent_at` and `received_at`; True when it changed.

        The header is the server's time in whole seconds at some moment
        between the two: the offset lies between `date - received_at` and
        `date + 1 - sent_at`. The offset in use is kept while it lies in
        that range (so a run's start and return move alike and its duration
        stays true, and a slow answer teaches nothing); else the middle of
        the range is taken."""
        try:
            server_time = email.utils.parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        lowest = server_time - received_at
        highest = server_time + 1 - sent_at
        if lowest - CLOCK_TOLERANCE_SECONDS <= self.offset <= highest + CLOCK_TOLERANCE_SECONDS:
            return False
        self.offset = (lowest + highest) / 2
        log.warning("this machine's clock is %+.0f s off the server's; "
                    "using the server's time", -self.offset)
        return True


def pause(seconds):
    """Waits `seconds`. A timed wait on an event rather than time.sleep: it
    measures the pause on the monotonic clock only (time.sleep's absolute
    sleeps fail where the wall clock is faked for a test, and this keeps
    the worker testable with a skewed clock)."""
    threading.Event().wait(seconds)
