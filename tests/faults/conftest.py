"""Fixtures of the fault suite: the profile, a private PostgreSQL cluster,
and stacks whose loads are accounted for and whose figures are recorded.

JOBRUNNER_FAULTS_PROFILE=long (`make faults`): every fault three times, on
PostgreSQL and, where the fault applies, on SQLite. The short profile (the
default) runs each fault once on PostgreSQL with a short load, in the test
suite's PostgreSQL pass (JOBRUNNER_TEST_DATABASE_URL set); the SQLite pass
skips it. Figures go to the file JOBRUNNER_FAULTS_FIGURES names (one JSON
object a line; `python -m tests.faults.table FILE` prints the table).
"""
import json
import os
import time

import pytest

from bench.stack import FreshDatabase, Stack
from tests.e2e.conftest import failed

from . import cluster as private
from .harness import FAULT_SETTINGS, Load

LONG = os.environ.get("JOBRUNNER_FAULTS_PROFILE") == "long"
REPETITIONS = 3 if LONG else 1
# Seconds of load and runs a second.
LOAD_SECONDS = 12 if LONG else 6
RATE = 3


def long_only(variant, variants):
    """The variants of a fault, with `variant` in the long profile only (the
    short one must stay within a couple of minutes)."""
    return [variant, *variants] if LONG else list(variants)


def backends(sqlite_applies=True):
    """The parameters of a fault test: (database, repetition)."""
    names = ["postgres", "sqlite"] if LONG and sqlite_applies else ["postgres"]
    return [pytest.param(name, rep, id=f"{name}-{rep}")
            for name in names for rep in range(1, REPETITIONS + 1)]


@pytest.fixture(scope="session")
def cluster():
    reason = private.missing()
    if reason:
        pytest.skip(f"the fault suite needs a private PostgreSQL cluster: {reason}")
    made = private.PrivateCluster()
    yield made
    made.close()


@pytest.fixture
def backend(request):
    name = request.node.callspec.params["database"]
    if not LONG and not os.environ.get("JOBRUNNER_TEST_DATABASE_URL"):
        pytest.skip("the short fault profile runs in the PostgreSQL pass "
                    "(JOBRUNNER_TEST_DATABASE_URL set) or with JOBRUNNER_FAULTS_PROFILE=long")
    return name


@pytest.fixture
def fault(request, tmp_path, mail_sink, backend):
    """fault.stack(**settings) and fault.load(...): a live stack on a fresh
    database (of the private cluster, or SQLite) with a load on it;
    fault.record(name, figures) keeps the figures."""
    scene = FaultScene(request, tmp_path, mail_sink, backend)
    yield scene
    scene.close()


class FaultScene:
    def __init__(self, request, tmp_path, mail_sink, backend):
        self.request = request
        self.tmp_path = tmp_path
        self.mail_sink = mail_sink
        self.backend = backend
        self.cluster = request.getfixturevalue("cluster") if backend == "postgres" else None
        self.stacks = []
        self.loads = []

    def stack(self, mail_port=None, **settings):
        workdir = self.tmp_path / f"stack{len(self.stacks)}"
        database = FreshDatabase(str(workdir), self.cluster.url if self.cluster else None)
        live = Stack(workdir, settings={**FAULT_SETTINGS, **settings},
                     mail_port=mail_port or self.mail_sink.port, database=database)
        self.stacks.append(live)
        live.start_server()
        return live

    def load(self, stack, **kwargs):
        load = Load(stack, self.tmp_path / f"load{len(self.loads)}", **kwargs)
        self.loads.append(load)
        return load

    def start_workers(self, load, base_urls=(None, None), **options):
        since = time.time()
        for number, base_url in enumerate(base_urls, start=1):
            load.start_worker(number, base_url=base_url, **options)
        load.wait_pinged(since)

    def record(self, name, figures):
        row = {"fault": name, "database": self.backend,
               "repetition": self.request.node.callspec.params.get("rep"),
               "load_average": os.getloadavg()[0], **figures}
        print(json.dumps(row))
        target = os.environ.get("JOBRUNNER_FAULTS_FIGURES")
        if target:
            with open(target, "a") as f:
                f.write(json.dumps(row) + "\n")

    def close(self):
        if failed(self.request.node):
            for live in self.stacks:
                print(live.logs(tail=6000))
        for load in self.loads:
            load.close()
        for live in self.stacks:
            live.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)
