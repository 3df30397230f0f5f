"""Fixtures of the end-to-end tests: live stacks of real processes on
loopback (tests/stack.py) and, per test, a scene of its own on one."""
import os
import signal
import subprocess
import uuid
from datetime import datetime

import pytest

from jobrunner.models import Group, Job, JobTemplate, Project, Run, User, Worker, WorkerPool

from bench.stack import Stack, database_from_environment
from tests.conftest import cheap_hash

PASSWORD = "e2e-password"
# Unresponsive only after a minute without a ping: no test's worker is
# judged unresponsive by accident, whatever the machine's load. The tests
# of that duty build a stack with a short threshold.
PATIENT_SCHEDULER = {
    "jobrunner.worker.ping_interval": "1",
    "jobrunner.worker.ping_margin": "1",
    "jobrunner.worker.unresponsive_after_intervals": "60",
}


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


def failed(node):
    return any(
        getattr(getattr(node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def print_logs_on_failure(node, stack):
    """Once per stack and test, the tails of the stack's process logs."""
    printed = node.__dict__.setdefault("printed_stacks", set())
    if failed(node) and id(stack) not in printed:
        printed.add(id(stack))
        print(stack.logs())


def new_stack(workdir, mail_sink, settings):
    return Stack(workdir, settings=settings, mail_port=mail_sink.port,
                 database=database_from_environment(workdir))


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mail_sink):
    """Server and scheduler shared by the module's tests (each test has a
    project, pool and workers of its own)."""
    live = new_stack(tmp_path_factory.mktemp("stack"), mail_sink, PATIENT_SCHEDULER)
    try:
        live.start_server()
        live.start_scheduler()
        yield live
    finally:
        live.close()


@pytest.fixture
def make_stack(tmp_path, mail_sink, request):
    """make_stack(**settings): a stack of this test's own, server started."""
    made = []

    def make(**settings):
        live = new_stack(tmp_path / f"stack{len(made)}", mail_sink, settings)
        made.append(live)
        live.start_server()
        return live

    yield make
    for live in made:
        print_logs_on_failure(request.node, live)
        live.close()


@pytest.fixture
def make_scene(request, tmp_path):
    """make_scene(stack): this test's project, pool and workers on `stack`;
    its workers are stopped and its scripts' processes ended afterwards."""
    scenes = []

    def make(on_stack, **kwargs):
        scene = Scene(on_stack, tmp_path / f"scene{len(scenes)}", **kwargs)
        scenes.append(scene)
        return scene

    yield make
    for scene in scenes:
        print_logs_on_failure(request.node, scene.stack)
        scene.close()


@pytest.fixture
def scene(make_scene, stack):
    return make_scene(stack)


class Scene:
    """A project with viewers and admins, a pool of `workers` workers
    (started on demand), a template that adds a shebang, and readers of the
    API as the first worker sees it."""

    def __init__(self, stack, workdir, workers=2):
        self.stack = stack
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.tag = tag
        with stack.Session() as session:
            viewers = Group(name=f"viewers {tag}")
            admins = Group(name=f"admins {tag}")
            self.admin = User(username=f"admin-{tag}", password_hash=cheap_hash(PASSWORD),
                              email=f"admin-{tag}@example.com", groups=[admins])
            self.workers = [
                # Registered just now: the scheduler gives it time to start.
                Worker(title=f"worker {i} {tag}", api_key=f"w{i}-{tag}", secret=f"secret-{i}-{tag}",
                       ping_response_dts=datetime.now().astimezone())
                for i in range(1, workers + 1)
            ]
            self.pool = WorkerPool(title=f"pool {tag}", workers=list(self.workers),
                                   notification_addresses=f"pool-{tag}@example.com")
            self.project = Project(title=f"project {tag}", groups=[viewers], auth_groups=[admins],
                                   worker_pools=[self.pool])
            self.template = JobTemplate(title=f"template {tag}", project=self.project,
                                        body="#!/bin/sh\n{{ content }}\n")
            session.add_all([viewers, admins, self.admin, *self.workers, self.pool, self.project,
                             self.template])
            session.commit()
        self.api = stack.client(self.workers[0].api_key, self.workers[0].secret)
        self.processes = {}

    # --- data ---------------------------------------------------------------

    def template_without_shebang(self):
        with self.stack.Session() as session:
            template = JobTemplate(title=f"bare template {uuid.uuid4().hex[:8]}",
                                   project_id=self.project.id, body="{{ content }}")
            session.add(template)
            session.commit()
            return template

    def job(self, script, title=None, template=None, parent=None, **fields):
        with self.stack.Session() as session:
            job = Job(
                title=title or f"job {uuid.uuid4().hex[:8]}",
                job_template=session.get(JobTemplate, (template or self.template).id),
                worker_pool_id=self.pool.id,
                parent_id=parent.id if parent is not None else None,
                script_content_partial=script,
                notification_addresses=f"job-{self.tag}@example.com",
                **fields,
            )
            job.script_content = job.render_script()
            session.add(job)
            session.commit()
            return job

    def schedule(self, job, **fields):
        """A run of `job`, due now (as the recurring schedule makes them)."""
        with self.stack.Session() as session:
            fields.setdefault("schedule_dts", datetime.now().astimezone())
            run = Run(job_id=job.id, **fields)
            session.add(run)
            session.flush()
            run.schedule_id = run.id
            session.commit()
            return run

    # --- the API, as the first worker sees it ------------------------------------

    def get(self, path):
        return self.api.get(path)

    def runs_of(self, job):
        return self.api.objects(f"/api/v1/run/?job={job.id}&order_by=id&limit=1000")

    def run(self, run_id):
        return self.get(f"/api/v1/run/{run_id}/")

    def log_of(self, run):
        logs = self.api.objects(f"/api/v1/run_log/?run={run['id']}")
        return logs[0]["content"] if logs else None

    def job_state(self, job):
        return self.get(f"/api/v1/job/{job.id}/")

    def returned_runs(self, job, count):
        """The runs of `job` once `count` of them have returned, else None."""
        runs = [run for run in self.runs_of(job) if run["return_dts"]]
        return runs if len(runs) >= count else None

    # --- workers -------------------------------------------------------------------

    def start_worker(self, number=1, name=None, prefix=(), env=None, **options):
        worker = self.workers[number - 1]
        name = name or f"worker-{worker.api_key}"
        options.setdefault("script_temp_path", os.path.join(self.workdir, "scripts"))
        proc = self.stack.start_worker(worker.api_key, worker.secret, name=name, prefix=prefix,
                                       env=env, **options)
        self.processes[name] = proc
        return proc

    def close(self):
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # What the workers left running (a killed worker's scripts).
        self.stack.kill_strays(str(self.workdir))
