import os
import re
import signal
import subprocess
import threading
import time

import pytest

from jobrunner.worker.executor import (
    ScriptError,
    kill_process_group,
    run_script,
    write_script,
)
from jobrunner.worker.logbuffer import LogBuffer


def wait_for(condition, timeout=10.0, interval=0.02):
    """Poll until ``condition()`` is true; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout} s")


def is_alive(pid):
    """True while ``pid`` runs; a zombie counts as dead."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        # Gone, possibly between the open and the read.
        return False
    return state != "Z"


def test_runs_a_script_and_collects_output_and_exit_code(tmp_path):
    buffer = LogBuffer(10_000)
    started = []
    result = run_script(
        "#!/bin/sh\necho out\necho err >&2\nexit 3\n",
        str(tmp_path),
        buffer,
        on_started=started.append,
    )
    assert result.error is None
    assert result.exit_code == 3
    assert not result.success
    assert started == [result.pid]
    assert buffer.render() == "out\nerr\n"
    # The temporary script is removed afterwards (its private folder stays).
    assert [path for path in tmp_path.rglob("*") if not path.is_dir()] == []


def test_successful_script(tmp_path):
    buffer = LogBuffer(10_000)
    result = run_script("#!/bin/sh\nprintf 'héllo'\n", str(tmp_path), buffer)
    assert result.exit_code == 0
    assert result.success
    assert buffer.render() == "héllo"


def test_script_runs_in_its_own_process_group(tmp_path):
    buffer = LogBuffer(10_000)
    result = run_script(
        "#!/bin/sh\nps -o pgid= -p $$\n", str(tmp_path), buffer
    )
    assert result.exit_code == 0
    assert int(buffer.render().strip()) == result.pid
    assert result.pid != os.getpgrp()


def test_crlf_line_ends_are_accepted(tmp_path):
    buffer = LogBuffer(10_000)
    result = run_script("#!/bin/sh\r\necho ok\r\n", str(tmp_path), buffer)
    assert result.success
    assert buffer.render() == "ok\n"


def test_script_without_shebang_fails_with_the_reason(tmp_path):
    buffer = LogBuffer(10_000)
    started = []
    result = run_script("echo hello\n", str(tmp_path), buffer, on_started=started.append)
    assert not result.success
    assert result.pid is None
    assert started == []
    assert "shebang" in result.error
    assert "echo hello" in result.error
    assert list(tmp_path.iterdir()) == []


def test_missing_interpreter_fails_with_the_reason(tmp_path):
    result = run_script(
        "#!/nonexistent/interpreter\nprint(1)\n", str(tmp_path), LogBuffer(10_000)
    )
    assert not result.success
    assert "cannot start the script" in result.error
    assert "/nonexistent/interpreter" in result.error


def test_unusable_temp_dir_fails_with_the_reason(tmp_path):
    missing = tmp_path / "does-not-exist"
    result = run_script("#!/bin/sh\necho hi\n", str(missing), LogBuffer(10_000))
    assert not result.success
    assert "cannot create the script file" in result.error
    assert str(missing) in result.error


def test_written_script_is_executable(tmp_path):
    path = write_script("#!/bin/sh\n", str(tmp_path))
    assert os.access(path, os.X_OK)
    with pytest.raises(ScriptError, match="empty"):
        write_script("", str(tmp_path))


def test_output_beyond_the_budget_is_truncated(tmp_path):
    buffer = LogBuffer(1000)
    result = run_script(
        "#!/bin/sh\nseq 1 100000\n", str(tmp_path), buffer
    )
    assert result.success
    text = buffer.render()
    assert len(text.encode()) <= 1000
    assert text.startswith("1\n2\n3\n")
    assert "[truncated]" in text
    assert text.endswith("99999\n100000\n")


def start_run_in_thread(script, tmp_path, **kwargs):
    buffer = LogBuffer(10_000)
    outcome = {}
    thread = threading.Thread(
        target=lambda: outcome.update(
            result=run_script(script, str(tmp_path), buffer, **kwargs)
        ),
        daemon=True,
    )
    thread.start()
    return buffer, outcome, thread


def child_pid_from(buffer):
    match = re.search(r"child (\d+)", buffer.render())
    return int(match.group(1)) if match else None


def test_kill_request_kills_the_whole_process_group(tmp_path):
    kill_event = threading.Event()
    buffer, outcome, thread = start_run_in_thread(
        "#!/bin/sh\nsleep 300 &\necho child $!\nwait\n",
        tmp_path,
        kill_event=kill_event,
        kill_grace_seconds=5,
    )
    child = wait_for(lambda: child_pid_from(buffer))
    assert is_alive(child)

    kill_event.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.killed
    assert not result.success
    assert result.exit_code == -signal.SIGTERM
    wait_for(lambda: not is_alive(child))


def test_a_child_ignoring_sigterm_gets_sigkill(tmp_path):
    kill_event = threading.Event()
    buffer, outcome, thread = start_run_in_thread(
        "#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho child $!\nwait\n",
        tmp_path,
        kill_event=kill_event,
        kill_grace_seconds=0.3,
    )
    child = wait_for(lambda: child_pid_from(buffer))
    kill_event.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome["result"].killed
    assert outcome["result"].exit_code == -signal.SIGKILL
    wait_for(lambda: not is_alive(child))


def test_refused_start_kills_the_script(tmp_path):
    buffer, outcome, thread = start_run_in_thread(
        "#!/bin/sh\nsleep 300\n", tmp_path, on_started=lambda pid: False
    )
    thread.join(timeout=10)
    assert not thread.is_alive()
    result = outcome["result"]
    assert result.abandoned
    assert not result.success
    assert not is_alive(result.pid)


def test_kill_process_group_kills_leader_and_child(tmp_path):
    leader = subprocess.Popen(
        ["/bin/sh", "-c", "sleep 300 & echo $!; wait"],
        stdout=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    child = int(leader.stdout.readline())
    assert is_alive(leader.pid) and is_alive(child)

    assert kill_process_group(leader.pid, grace_seconds=5, process=leader)
    assert leader.wait(timeout=5) == -signal.SIGTERM
    wait_for(lambda: not is_alive(child))
    leader.stdout.close()


def test_background_child_holding_output_does_not_block_the_result(tmp_path):
    buffer, outcome, thread = start_run_in_thread(
        "#!/bin/sh\nsleep 300 &\necho child $!\nexit 0\n",
        tmp_path,
        drain_seconds=0.2,
    )
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome["result"].success
    child = child_pid_from(buffer)
    os.kill(child, signal.SIGKILL)
