"""The one-command demo: `python -m jobrunner.demo development.ini`.

Creates `var/` next to the ini file, creates or upgrades the database, loads
the demo set-up (jobrunner/demo.yaml), writes `var/worker.ini`, then runs the
web server (`pserve`, with the embedded scheduler; a `jobrunner-scheduler`
beside it when the ini does not embed one) and one local worker until Ctrl-C
or SIGTERM, which stop every process it started. Starting it again adds no
data: loading is idempotent and first runs are only scheduled for jobs that
have no pending run.
"""
import argparse
import configparser
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import resources

# The logins of demo.yaml, for the banner.
LOGINS = (("demo", "demo", 'admin of the project "Demo"'), ("admin", "admin", "superuser"))
STARTUP_TIMEOUT = 60.0
# A worker finishes its running scripts on SIGTERM; the demo's take seconds.
STOP_TIMEOUT = 20.0

BIN = os.path.dirname(sys.executable)


class DemoError(Exception):
    pass


class Demo:
    """What `prepare` set up: where things are and how to reach them."""

    def __init__(self, ini, settings, base_url, worker_ini, changes):
        self.ini = ini
        self.var = os.path.dirname(worker_ini)
        self.settings = settings
        self.base_url = base_url
        self.worker_ini = worker_ini
        self.changes = changes

    @property
    def embeds_scheduler(self):
        return self.settings.scheduler_embedded


def server_address(ini):
    """The URL the ini's [server:main] (waitress) listens on."""
    parser = configparser.ConfigParser(defaults={"here": os.path.dirname(ini), "__file__": ini})
    parser.read(ini, encoding="utf-8")
    if not parser.has_section("server:main"):
        raise DemoError(f"{ini} has no [server:main] section for pserve")
    section = parser["server:main"]
    listen = section.get("listen", "").split()
    if listen:
        host, _, port = listen[0].rpartition(":")
    else:
        host, port = section.get("host", "127.0.0.1"), section.get("port", "8080")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "*"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def demo_data(now):
    from .loader import parse_yaml

    data = parse_yaml(resources.files("jobrunner").joinpath("demo.yaml").read_text("utf-8"))
    for job in data["jobs"]:
        if job.get("reschedule_interval"):
            job.setdefault("schedule_dts", now)
    return data


def prepare(config_uri, out=print):
    """var/, the database schema, the demo data and the worker's ini file."""
    from pyramid.paster import setup_logging
    from sqlalchemy import update

    from . import loader
    from .admin import worker_ini, write_private_file
    from .migrations import upgrade
    from .models import Worker, get_engine, get_session_factory, utcnow
    from .settings import load_settings

    ini = os.path.abspath(config_uri)
    if not os.path.isfile(ini):
        raise DemoError(f"no such file: {ini}")
    var = os.path.join(os.path.dirname(ini), "var")
    os.makedirs(var, exist_ok=True)
    settings = load_settings(ini)
    setup_logging(ini)
    base_url = server_address(ini)

    upgrade(settings.database_url)
    data = demo_data(utcnow())
    worker = data["workers"][0]
    engine = get_engine(settings.ini)
    try:
        with get_session_factory(engine)() as session:
            changes = loader.load(session, data, settings.timezone)
            # The worker starts in a moment. A worker that never pinged counts
            # as unresponsive: without this, the scheduler's first round would
            # find the pool dead and send an alert on every start of the demo.
            session.execute(update(Worker).where(Worker.api_key == worker["api_key"])
                            .values(ping_response_dts=utcnow()))
            session.commit()
    finally:
        engine.dispose()
    out(f"Demo data loaded: {len(changes)} change(s)." if changes
        else "Demo data present already: nothing to change.")

    path = os.path.join(var, "worker.ini")
    write_private_file(path, worker_ini(
        base_url, worker["api_key"], worker["secret"], worker["concurrent_jobs"], worker["title"],
        ping_interval=f"{settings.ping_interval:g}",
    ))
    return Demo(ini, settings, base_url, path, changes)


class StopRequest:
    """SIGINT, SIGTERM or SIGHUP ask the demo to stop; a second one while it
    stops kills what is left at once."""

    def __init__(self, processes):
        self.processes = processes
        self.event = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.handle)

    def handle(self, signum, frame):
        if self.event.is_set():
            self.processes.kill_all()
        self.event.set()

    def wait(self, timeout):
        return self.event.wait(timeout)

    def is_set(self):
        return self.event.is_set()


class Processes:
    """The children, each leading a process group of its own: a Ctrl-C in the
    terminal reaches the demo only, which then stops them in order."""

    def __init__(self, cwd, out=print):
        self.cwd = cwd
        self.out = out
        self.children = []

    def start(self, name, argv):
        if not os.path.exists(argv[0]):
            raise DemoError(f"{argv[0]} is missing: is jobrunner installed in this virtualenv?")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=self.cwd, process_group=0)
        self.children.append((name, proc))
        self.out(f"Started {name} (pid {proc.pid}): {' '.join(argv)}")
        return proc

    def exited(self):
        for name, proc in self.children:
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    def stop_all(self):
        # The worker reports its running runs to the server: it goes first.
        for name, proc in reversed(self.children):
            if proc.poll() is None:
                self.out(f"Stopping {name} (pid {proc.pid})...")
                proc.terminate()
                try:
                    proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.out(f"{name} did not stop within {STOP_TIMEOUT:.0f} s: killing it.")
            self._kill_group(proc)
            proc.wait()

    def kill_all(self):
        for _, proc in self.children:
            self._kill_group(proc)

    @staticmethod
    def _kill_group(proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def server_answers(base_url):
    try:
        with urllib.request.urlopen(base_url + "/login", timeout=2) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (urllib.error.URLError, OSError):
        return False


def wait_for_server(demo, server, stop):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not stop.is_set():
        if server.poll() is not None:
            raise DemoError(f"the web server exited with status {server.returncode}; "
                            "its output is above (is the port in use?)")
        if server_answers(demo.base_url):
            return True
        if time.monotonic() > deadline:
            raise DemoError(f"the web server did not answer at {demo.base_url} "
                            f"within {STARTUP_TIMEOUT:.0f} s")
        stop.wait(0.2)
    return False


def banner(demo):
    here = os.path.dirname(demo.ini)
    lines = ["", "Job-Runner demo is running.", f"  Dashboard:  {demo.base_url}/"]
    for index, (username, password, role) in enumerate(LOGINS):
        label = "  Log in as:" if index == 0 else "         or:"
        lines.append(f"{label}  {username} / {password}  ({role})")
    lines.append(f"  Worker:     {os.path.relpath(demo.worker_ini, here)}")
    if demo.settings.mail_folder:
        mails = f"written to {os.path.relpath(demo.settings.mail_folder, here)}/"
    else:
        mails = f"sent through {demo.settings.ini.get('mail.host', 'localhost')}"
    lines.append(f"  Mails:      {mails}")
    lines += ["Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


def run(config_uri, out=print):
    processes = Processes(None, out)
    stop = StopRequest(processes)
    demo = prepare(config_uri, out)
    if stop.is_set():
        return 0
    # The children work in var/ (an ini that includes pyramid_mailer.debug
    # has its mails written to ./mail).
    processes.cwd = demo.var
    try:
        server = processes.start("the web server", [os.path.join(BIN, "pserve"), demo.ini])
        if not wait_for_server(demo, server, stop):
            return 0
        if not demo.embeds_scheduler:
            if importlib.util.find_spec("jobrunner.scheduling.daemon") is None:
                out("No scheduler in this installation: health checks and alerts do not run.")
            else:
                processes.start("the scheduler",
                                [os.path.join(BIN, "jobrunner-scheduler"), demo.ini])
        processes.start("the worker", [os.path.join(BIN, "jobrunner-worker"), demo.worker_ini])
        out(banner(demo))
        while not stop.wait(0.5):
            exited = processes.exited()
            if exited is not None:
                name, status = exited
                raise DemoError(f"{name} exited with status {status}; stopping the demo")
        out("Stopping the demo...")
        return 0
    finally:
        processes.stop_all()
        out("Every process of the demo has stopped.")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m jobrunner.demo",
        description="Run Job-Runner with demo data, the web server with its scheduler and a "
                    "local worker, until Ctrl-C.",
    )
    parser.add_argument("config_uri", metavar="CONFIG_URI", help="the ini file, e.g. development.ini")
    args = parser.parse_args(argv)

    from sqlalchemy.exc import SQLAlchemyError

    from .loader import LoadError
    from .settings import MissingEnvironment, SettingsError

    def out(text):
        print(text, flush=True)

    try:
        return run(args.config_uri, out)
    except (DemoError, LoadError, MissingEnvironment, SettingsError, OSError, SQLAlchemyError) as exc:
        print(f"demo: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
