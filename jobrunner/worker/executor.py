"""Executing one job script: temp file, process group, output, kill."""

import dataclasses
import errno
import logging
import os
import re
import selectors
import signal
import stat
import subprocess
import tempfile
import time

from .clock import pause

log = logging.getLogger(__name__)

KILL_GRACE_SECONDS = 5.0
# A run of a job with a timeout gets SIGTERM at the timeout, SIGKILL this
# much later.
TIMEOUT_KILL_GRACE_SECONDS = 10.0
# After the script exits, how long a leftover background child may keep its
# output pipe open before the worker stops reading and reports.
OUTPUT_DRAIN_SECONDS = 2.0
POLL_SECONDS = 0.05
READ_SIZE = 65536
# Another thread forking while a script file is still open for writing makes
# exec fail with ETXTBSY for a moment; retrying is the usual remedy.
TEXT_FILE_BUSY_ATTEMPTS = 10


class ScriptError(Exception):
    """The script could not be started; the message is the reason."""


@dataclasses.dataclass
class ScriptResult:
    exit_code: int | None = None
    pid: int | None = None
    # Why the script could not be started (it never ran).
    error: str | None = None
    # The process group was signalled because a kill was requested.
    killed: bool = False
    # on_started refused the run (the server no longer gives it to us).
    abandoned: bool = False

    @property
    def success(self):
        return (
            self.error is None
            and not self.abandoned
            and not self.killed
            and self.exit_code == 0
        )


def describe_exit_code(exit_code):
    if exit_code is None:
        return "exit status unknown"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"terminated by {name}"
    return f"exit code {exit_code}"


def check_shebang(script_content):
    if not script_content.strip():
        raise ScriptError("the script is empty; its first line must be a shebang")
    if not script_content.startswith("#!"):
        first_line = script_content.split("\n", 1)[0][:80]
        raise ScriptError(
            "the script's first line must be a shebang such as "
            f"'#!/bin/sh', not {first_line!r}"
        )


# What a job script inherits from the worker's environment; everything else
# (the ini's path, proxies with passwords, the worker's own settings) stays.
INHERITED_ENVIRONMENT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "SHELL",
                         "TMPDIR")
SAFE_PREFIX = re.compile(r"[^A-Za-z0-9_-]")


def script_environment(run_id, job_title, server_url, base=None):
    """The clean environment of a job script (documented in docs/worker.md)."""
    base = os.environ if base is None else base
    env = {name: base[name] for name in INHERITED_ENVIRONMENT if name in base}
    env.update({name: value for name, value in base.items() if name.startswith("LC_")})
    env.setdefault("PATH", os.defpath)
    env["JOBRUNNER_RUN_ID"] = str(int(run_id))
    env["JOBRUNNER_JOB_TITLE"] = str(job_title or "").replace("\x00", "")
    env["JOBRUNNER_SERVER_URL"] = server_url
    return env


def private_folder(temp_dir):
    """A folder for script files inside ``temp_dir`` that only this user
    can enter: another user on the machine reads no script and swaps none."""
    path = os.path.join(temp_dir, f"jobrunner-worker-{os.getuid()}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise ScriptError(
            f"cannot create the script file in {temp_dir}: {error.strerror or error}"
        ) from None
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ScriptError(f"{path} is not a folder of this user; refusing to put scripts there")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def write_script(script_content, temp_dir, prefix="jobrunner-run-"):
    """Write an executable script file, readable by this user only, in a
    private folder inside ``temp_dir``; return its path."""
    # Only plain characters in the name, whatever the caller made it of.
    prefix = SAFE_PREFIX.sub("_", prefix)[:64]
    # Scripts typed in a browser arrive with CRLF line ends, and a "\r" after
    # the interpreter in the shebang line would make it unfindable.
    script_content = script_content.replace("\r\n", "\n")
    check_shebang(script_content)
    temp_dir = private_folder(temp_dir)
    try:
        fd, path = tempfile.mkstemp(prefix=prefix, dir=temp_dir)
    except OSError as error:
        raise ScriptError(
            f"cannot create the script file in {temp_dir}: {error.strerror or error}"
        ) from None
    try:
        with os.fdopen(fd, "wb") as script_file:
            script_file.write(script_content.encode("utf-8"))
        os.chmod(path, 0o700)
    except OSError as error:
        remove_script(path)
        raise ScriptError(
            f"cannot write the script file {path}: {error.strerror or error}"
        ) from None
    return path


def remove_script(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def start_script(path, env=None):
    """Start the script in a session (and process group) of its own."""
    for attempt in range(TEXT_FILE_BUSY_ATTEMPTS):
        try:
            return subprocess.Popen(
                [path],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as error:
            if error.errno == errno.ETXTBSY and attempt + 1 < TEXT_FILE_BUSY_ATTEMPTS:
                pause(0.01 * (attempt + 1))
                continue
            raise ScriptError(_start_failure_reason(path, error)) from None
    raise AssertionError("unreachable")


def _start_failure_reason(path, error):
    reason = f"cannot start the script: {error.strerror or error}"
    if error.errno in (errno.ENOENT, errno.ENOEXEC, errno.EACCES):
        try:
            with open(path, "rb") as script_file:
                shebang = script_file.readline(200).decode("utf-8", "replace").strip()
        except OSError:
            shebang = ""
        if shebang:
            reason += f" (check the interpreter in {shebang!r})"
    return reason


def signal_process_group(pgid, signum):
    """Send ``signum`` to a process group; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("not allowed to signal process group %s", pgid)
        return True
    return True


def process_group_exists(pgid):
    return signal_process_group(pgid, 0)


def kill_process_group(pgid, grace_seconds=KILL_GRACE_SECONDS, process=None):
    """SIGTERM a process group, SIGKILL it if still alive after the grace time.

    ``process``, the group leader's Popen if it is our child, is reaped on
    the way (a zombie leader would keep the group alive). Returns True when
    the group is gone.
    """
    if not signal_process_group(pgid, signal.SIGTERM):
        return True
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()
        if not process_group_exists(pgid):
            return True
        pause(POLL_SECONDS)
    signal_process_group(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if process is not None:
            process.poll()
        if not process_group_exists(pgid):
            return True
        pause(POLL_SECONDS)
    return False


def run_script(
    script_content,
    temp_dir,
    log_buffer,
    *,
    on_started=None,
    kill_event=None,
    kill_grace_seconds=KILL_GRACE_SECONDS,
    drain_seconds=OUTPUT_DRAIN_SECONDS,
    script_prefix="jobrunner-run-",
    env=None,
):
    """Run a job script to its end and return a ScriptResult.

    Output (stdout and stderr merged) goes into ``log_buffer``.
    ``on_started(pid)`` is called once the process exists; if it returns
    False the process group is killed and the result is ``abandoned``.
    Setting ``kill_event`` kills the whole process group (SIGTERM, then
    SIGKILL after ``kill_grace_seconds``). Never raises for a script that
    cannot start: the reason is in ``result.error``.
    """
    try:
        path = write_script(script_content, temp_dir, prefix=script_prefix)
    except ScriptError as error:
        return ScriptResult(error=str(error))
    try:
        try:
            process = start_script(path, env)
        except ScriptError as error:
            return ScriptResult(error=str(error))
        result = ScriptResult(pid=process.pid)
        abandon = on_started is not None and on_started(process.pid) is False
        result.abandoned = abandon
        _supervise(process, log_buffer, result, kill_event, abandon,
                   kill_grace_seconds, drain_seconds)
        return result
    finally:
        remove_script(path)


def _supervise(process, log_buffer, result, kill_event, kill_now,
               kill_grace_seconds, drain_seconds):
    """Read output, honour kill requests and reap the process."""
    pgid = process.pid
    output = process.stdout
    selector = selectors.DefaultSelector()
    selector.register(output, selectors.EVENT_READ)
    output_open = True
    exited_at = None
    terminated_at = None
    sigkill_sent = False
    try:
        while True:
            if output_open:
                for _key, _events in selector.select(timeout=POLL_SECONDS):
                    chunk = os.read(output.fileno(), READ_SIZE)
                    if chunk:
                        log_buffer.write(chunk)
                    else:
                        output_open = False
                        selector.unregister(output)
            else:
                pause(POLL_SECONDS)
            now = time.monotonic()

            kill_wanted = kill_now or (kill_event is not None and kill_event.is_set())
            if kill_wanted and terminated_at is None:
                if exited_at is None or process_group_exists(pgid):
                    result.killed = not kill_now
                    signal_process_group(pgid, signal.SIGTERM)
                terminated_at = now
            if (
                terminated_at is not None
                and not sigkill_sent
                and now - terminated_at >= kill_grace_seconds
            ):
                signal_process_group(pgid, signal.SIGKILL)
                sigkill_sent = True

            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is None:
                continue
            killing = terminated_at is not None and not sigkill_sent
            if killing and process_group_exists(pgid):
                # The whole group must be gone, not just the script itself.
                continue
            if not output_open or now - exited_at >= drain_seconds:
                break
    finally:
        selector.close()
        output.close()
    result.exit_code = process.wait()
