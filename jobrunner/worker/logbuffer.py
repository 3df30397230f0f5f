"""A run's output, kept within a byte budget: its head and its tail.

Scripts may write far more than the server accepts as a run log, so only the
first 20 % and the last 80 % of ``max_bytes`` are kept, with a ``[truncated]``
marker line between them. Memory stays bounded by ``max_bytes`` whatever the
script writes.
"""

import threading

TRUNCATED_MARKER = "[truncated]\n"
HEAD_SHARE = 0.2
# Room for the marker line plus the newline that may precede it.
_MARKER_ROOM = len(TRUNCATED_MARKER.encode("utf-8")) + 1
MIN_LOG_BYTES = 4 * _MARKER_ROOM


def fit_utf8(text, max_bytes, keep="start"):
    """Cut ``text`` to at most ``max_bytes`` of UTF-8, on a character boundary.

    ``keep`` is ``"start"`` to keep the beginning, ``"end"`` to keep the end.
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    if max_bytes <= 0:
        return ""
    if keep == "start":
        # A character split by the cut is dropped whole.
        return encoded[:max_bytes].decode("utf-8", errors="ignore")
    return encoded[len(encoded) - max_bytes:].decode("utf-8", errors="ignore")


def _clean(text):
    # PostgreSQL text columns reject NUL characters.
    return text.replace("\x00", "\ufffd")


def _decode(data):
    return _clean(data.decode("utf-8", errors="replace"))


def _is_continuation(byte):
    return 0x80 <= byte <= 0xBF


def _without_split_end(data):
    """``data`` without a multi-byte character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if _is_continuation(byte):
            continue
        if byte >= 0xC0:
            expected = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            if expected > back:
                return data[:-back]
        break
    return data


def _without_split_start(data):
    """``data`` without the continuation bytes of a character cut at its start."""
    skip = 0
    while skip < min(3, len(data)) and _is_continuation(data[skip]):
        skip += 1
    return data[skip:]


class LogBuffer:
    """Collects a run's output as bytes; ``render()`` gives the log text.

    Thread-safe: the executor writes while a reporter thread renders.
    """

    def __init__(self, max_bytes):
        if max_bytes < MIN_LOG_BYTES:
            raise ValueError(f"max_bytes must be at least {MIN_LOG_BYTES}")
        self.max_bytes = max_bytes
        self.head_limit = int(max_bytes * HEAD_SHARE)
        # Everything after the head fits in the tail as long as nothing was
        # dropped, so a log of at most max_bytes is kept whole.
        self.tail_limit = max_bytes - self.head_limit
        self._head = bytearray()
        self._tail = bytearray()
        self._dropped_bytes = 0
        self._total_bytes = 0
        self._lock = threading.Lock()
        # Wakes a reporter waiting for output (see wait_for_change).
        self._changed = threading.Condition(self._lock)
        # Bumped on every write so a reporter can tell whether to send again.
        self.version = 0

    @property
    def total_bytes(self):
        """How many bytes were written, kept or not."""
        return self._total_bytes

    @property
    def truncated(self):
        return self._dropped_bytes > 0

    def write(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return
        with self._lock:
            self._total_bytes += len(data)
            head_room = self.head_limit - len(self._head)
            if head_room > 0:
                self._head += data[:head_room]
                data = data[head_room:]
            if data:
                if len(data) >= self.tail_limit:
                    self._dropped_bytes += len(self._tail) + len(data) - self.tail_limit
                    self._tail = bytearray(data[len(data) - self.tail_limit:])
                else:
                    self._tail += data
                    excess = len(self._tail) - self.tail_limit
                    if excess > 0:
                        del self._tail[:excess]
                        self._dropped_bytes += excess
            self.version += 1
            self._changed.notify_all()

    def wait_for_change(self, seen_version, timeout, until=None):
        """Block until something was written after ``seen_version``, ``until()``
        is true (after ``wake()``) or ``timeout`` seconds passed; returns the
        current version.

        A reporter sends the first output the moment it is written instead of
        at its next tick, so a short run shows its output while it runs.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self.version != seen_version or bool(until and until()), timeout
            )
            return self.version

    def wake(self):
        """Make ``wait_for_change`` look at its ``until`` again (e.g. on stop)."""
        with self._changed:
            self._changed.notify_all()

    def write_line(self, text):
        """Add a line of the worker's own (a note about the run) to the log."""
        with self._lock:
            needs_newline = bool(self._tail or self._head) and not (
                (self._tail or self._head).endswith(b"\n")
            )
        self.write(("\n" if needs_newline else "") + text.rstrip("\n") + "\n")

    def render(self):
        """The log text, at most ``max_bytes`` long in UTF-8."""
        with self._lock:
            head = bytes(self._head)
            tail = bytes(self._tail)
            truncated = self._dropped_bytes > 0
        if not truncated:
            text = _decode(head + tail)
            if len(text.encode("utf-8")) <= self.max_bytes:
                return text
            # Undecodable bytes became replacement characters and grew the
            # text beyond the budget: fall through and cut it.
        head_text = fit_utf8(
            _decode(_without_split_end(head)), self.head_limit, keep="start"
        )
        separator = TRUNCATED_MARKER
        if head_text and not head_text.endswith("\n"):
            separator = "\n" + separator
        tail_budget = (
            self.max_bytes
            - len(head_text.encode("utf-8"))
            - len(separator.encode("utf-8"))
        )
        tail_text = fit_utf8(
            _decode(_without_split_start(tail)), tail_budget, keep="end"
        )
        return head_text + separator + tail_text


def append_within(existing, line, max_bytes):
    """``existing`` log text plus one ``line``, kept within ``max_bytes``.

    Used to add a note to a log written by an earlier worker process.
    """
    buffer = LogBuffer(max(max_bytes, MIN_LOG_BYTES))
    buffer.write(existing or "")
    buffer.write_line(line)
    return buffer.render()
