import pytest

from jobrunner.worker.logbuffer import (
    MIN_LOG_BYTES,
    TRUNCATED_MARKER,
    LogBuffer,
    append_within,
    fit_utf8,
)


def test_short_output_is_kept_whole():
    buffer = LogBuffer(1000)
    buffer.write(b"hello\n")
    buffer.write("wörld\n")
    assert buffer.render() == "hello\nwörld\n"
    assert not buffer.truncated


def test_output_of_exactly_max_bytes_is_not_truncated():
    buffer = LogBuffer(1000)
    buffer.write(b"x" * 1000)
    assert buffer.render() == "x" * 1000
    assert not buffer.truncated


def test_long_output_keeps_head_20_and_tail_80_percent_with_marker():
    buffer = LogBuffer(1000)
    lines = [f"line {number:05d}\n" for number in range(2000)]
    for line in lines:
        buffer.write(line.encode())
    text = buffer.render()

    assert buffer.truncated
    assert len(text.encode()) <= 1000
    head, tail = text.split("\n" + TRUNCATED_MARKER)
    assert "".join(lines).startswith(head)
    assert "".join(lines).endswith(tail)
    assert len(head.encode()) == 200
    # The tail gets the rest of the budget, less the marker line.
    assert len(tail.encode()) == 1000 - 200 - len(TRUNCATED_MARKER) - 1
    assert len(text.encode()) == 1000
    assert tail.endswith("line 01999\n")
    assert head.startswith("line 00000\n")


def test_marker_is_a_line_of_its_own():
    buffer = LogBuffer(100)
    buffer.write(b"a" * 500)
    text = buffer.render()
    assert "\n" + TRUNCATED_MARKER in text
    assert text.startswith("a" * 20 + "\n" + TRUNCATED_MARKER)


def test_memory_stays_bounded_whatever_is_written():
    buffer = LogBuffer(1000)
    chunk = b"0123456789" * 1000
    for _ in range(1000):  # 10 MB in total
        buffer.write(chunk)
    assert buffer.total_bytes == 10_000_000
    assert len(buffer._head) + len(buffer._tail) <= 1000
    assert len(buffer.render().encode()) <= 1000


def test_one_write_larger_than_the_whole_budget():
    buffer = LogBuffer(100)
    buffer.write(bytes(range(48, 58)) * 100)
    text = buffer.render()
    assert len(text.encode()) <= 100
    assert text.startswith("0123456789" * 2)
    assert text.endswith("0123456789")


@pytest.mark.parametrize("max_bytes", [100, 101, 102, 103, 257, 1000])
def test_multibyte_text_is_cut_on_character_boundaries(max_bytes):
    buffer = LogBuffer(max_bytes)
    text_in = "äöü€𝄞" * 500  # 2-, 3- and 4-byte characters
    data = text_in.encode()
    # Written in odd-sized pieces so that characters are split across writes.
    for start in range(0, len(data), 7):
        buffer.write(data[start:start + 7])
    text = buffer.render()

    assert len(text.encode("utf-8")) <= max_bytes
    assert "\ufffd" not in text
    head, tail = text.split("\n" + TRUNCATED_MARKER)
    assert text_in.startswith(head)
    assert text_in.endswith(tail)
    # Nothing more than a partial character is lost at either cut.
    assert len(head.encode()) > int(max_bytes * 0.2) - 4
    assert len(text.encode()) > max_bytes - 4


def test_invalid_bytes_never_push_the_log_beyond_its_budget():
    buffer = LogBuffer(100)
    # Each invalid byte becomes a 3-byte replacement character.
    buffer.write(b"\xff" * 90)
    text = buffer.render()
    assert len(text.encode()) <= 100
    assert "\ufffd" in text


def test_nul_characters_are_replaced():
    buffer = LogBuffer(100)
    buffer.write(b"a\x00b")
    assert buffer.render() == "a\ufffdb"


def test_write_line_starts_a_new_line():
    buffer = LogBuffer(1000)
    buffer.write(b"no newline at end")
    buffer.write_line("note")
    assert buffer.render() == "no newline at end\nnote\n"
    empty = LogBuffer(1000)
    empty.write_line("note")
    assert empty.render() == "note\n"


def test_version_changes_on_every_write():
    buffer = LogBuffer(1000)
    before = buffer.version
    buffer.write(b"x")
    assert buffer.version != before


def test_budget_below_minimum_is_refused():
    with pytest.raises(ValueError):
        LogBuffer(MIN_LOG_BYTES - 1)


def test_fit_utf8_keeps_start_or_end():
    assert fit_utf8("äbc", 2, keep="start") == "ä"
    assert fit_utf8("äbc", 1, keep="start") == ""
    assert fit_utf8("abä", 2, keep="end") == "ä"
    assert fit_utf8("abc", 10) == "abc"


def test_append_within_adds_a_line_and_respects_the_budget():
    assert append_within("old output", "restarted", 1000) == "old output\nrestarted\n"
    long = append_within("x" * 5000, "restarted", 1000)
    assert len(long.encode()) <= 1000
    assert long.endswith("x\nrestarted\n")


# --- live updates: the first output at once, then batched ---------------------


def test_wait_for_change_returns_as_soon_as_output_is_written():
    import threading
    import time

    buffer = LogBuffer(1000)
    threading.Timer(0.05, buffer.write, args=(b"first\n",)).start()
    started = time.monotonic()
    version = buffer.wait_for_change(0, timeout=10)
    assert version == 1
    assert time.monotonic() - started < 5


def test_wait_for_change_times_out_without_output_and_wakes_on_until():
    import threading
    import time

    buffer = LogBuffer(1000)
    assert buffer.wait_for_change(0, timeout=0.05) == 0
    stop = threading.Event()
    threading.Timer(0.05, lambda: (stop.set(), buffer.wake())).start()
    started = time.monotonic()
    assert buffer.wait_for_change(0, timeout=10, until=stop.is_set) == 0
    assert time.monotonic() - started < 5


class RecordingWriter:
    """Keeps what a reporter sends, with the moment it was sent."""

    def __init__(self):
        import threading

        self.sent = []
        self.sent_event = threading.Event()

    def write(self, text, retry=True):
        import time

        self.sent.append((time.monotonic(), text))
        self.sent_event.set()


def test_the_reporter_sends_the_first_output_at_once_then_batches():
    import time

    from jobrunner.worker.run import LiveLogReporter

    buffer = LogBuffer(1000)
    writer = RecordingWriter()
    interval = 30  # far longer than the test: a second send would be a batch ignored
    reporter = LiveLogReporter(writer, buffer, interval, run_id=1)
    reporter.start()
    try:
        written = time.monotonic()
        buffer.write(b"hello\n")
        assert writer.sent_event.wait(5), "the first output was not sent at once"
        sent_at, text = writer.sent[0]
        assert text == "hello\n"
        assert sent_at - written < 5
        buffer.write(b"more\n")
        buffer.write(b"and more\n")
        # Within the interval nothing more goes out: later output is batched.
        assert buffer.wait_for_change(buffer.version, timeout=0.3) == 3
        assert len(writer.sent) == 1
    finally:
        stopped = time.monotonic()
        reporter.stop()
    assert time.monotonic() - stopped < 5, "stop waited for the interval"


def test_the_reporter_stops_at_once_when_nothing_was_written():
    import time

    from jobrunner.worker.run import LiveLogReporter

    buffer = LogBuffer(1000)
    writer = RecordingWriter()
    reporter = LiveLogReporter(writer, buffer, 30, run_id=1)
    reporter.start()
    started = time.monotonic()
    reporter.stop()
    assert time.monotonic() - started < 5
    assert writer.sent == []
