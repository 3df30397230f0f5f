"""Two schedulers side by side on PostgreSQL: no duplicate
expansion, no double failure, no double mail.

The loops run in threads with an engine each, on really committed rows
(`committed` deletes them afterwards); they must log no error: a deadlock
or a failed transaction would show up there.
"""
import logging
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from jobrunner.models import Job, Run, RunLog
from tests.conftest import now
from tests.scheduling.conftest import long_ago, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("postgres_only")]


def scheduler_errors(caplog):
    return [
        r.getMessage() for r in caplog.records
        if r.levelno >= logging.ERROR and r.name.startswith("jobrunner")
    ]


def test_race_two_schedulers_expand_fifty_schedules_exactly_once(committed, scheduler_threads, caplog):
    workers = [committed.worker() for _ in range(3)]
    pool = committed.pool(workers=workers)
    template = committed.template(committed.project(pools=[pool]))
    # 25 jobs with two due schedules each: 50 run-on-all-workers schedules.
    jobs = [committed.job(template, pool, run_on_all_workers=True) for _ in range(25)]
    originals = {
        committed.run(job, schedule_dts=now() - timedelta(minutes=minutes)).id: job.id
        for job in jobs
        for minutes in (1, 2)
    }
    committed.commit()
    job_ids = [job.id for job in jobs]

    def runs():
        committed.db.rollback()
        return committed.db.execute(
            select(Run.id, Run.job_id, Run.schedule_id, Run.worker_id).where(Run.job_id.in_(job_ids))
        ).all()

    with caplog.at_level(logging.INFO, logger="jobrunner"), scheduler_threads(2):
        wait_until(
            lambda: len(rows := runs()) == 150 and all(r.worker_id for r in rows),
            message="150 expanded runs",
        )

    rows = runs()
    assert len(rows) == 150
    assert not set(originals) & {r.id for r in rows}
    per_schedule = Counter((r.schedule_id, r.job_id, r.worker_id) for r in rows)
    assert set(per_schedule.values()) == {1}
    assert {(s, j) for s, j, _ in per_schedule} == set(originals.items())
    assert Counter(w for _, _, w in per_schedule) == {w.id: 50 for w in workers}
    assert scheduler_errors(caplog) == []


def test_race_two_schedulers_fail_an_unresponsive_workers_runs_once(
    committed, scheduler_threads, mailbox, caplog
):
    dead = committed.worker(ping_response_dts=long_ago())
    pool = committed.pool(workers=[dead], notification_addresses="pool@example.com")
    template = committed.template(committed.project(pools=[pool]))
    started = [
        committed.run(
            committed.job(template, pool, notification_addresses="job@example.com"),
            worker=dead, enqueue_dts=now(), start_dts=now(),
        )
        for _ in range(20)
    ]
    everywhere = [
        committed.run(committed.job(template, pool, run_on_all_workers=True), worker=dead,
                      enqueue_dts=now())
        for _ in range(5)
    ]
    queued = [
        committed.run(committed.job(template, pool), worker=dead, enqueue_dts=now())
        for _ in range(5)
    ]
    committed.commit()
    failing_ids = [r.id for r in started + everywhere]
    queued_ids = [r.id for r in queued]
    job_titles = {r.job_id: r.job.title for r in started + everywhere}

    def settled():
        committed.db.rollback()
        returned = committed.db.scalar(
            select(func.count()).select_from(Run).where(
                Run.id.in_(failing_ids), Run.return_dts.is_not(None)
            )
        )
        freed = committed.db.scalar(
            select(func.count()).select_from(Run).where(Run.id.in_(queued_ids), Run.worker_id.is_(None))
        )
        return returned == len(failing_ids) and freed == len(queued_ids) and len(mailbox.messages) >= 26

    with caplog.at_level(logging.INFO, logger="jobrunner"), scheduler_threads(2):
        wait_until(settled, message="every run of the unresponsive worker settled")

    # Mail is delivered inside each commit: with both loops stopped, the
    # mailbox holds everything they will ever send.
    subjects = Counter(m["subject"] for m in mailbox.messages)
    expected = Counter(f"Run error for: {title}" for title in job_titles.values())
    expected[f"Worker-pool unresponsive: {pool.title}"] = 1
    assert subjects == expected

    committed.db.rollback()
    for run in committed.db.scalars(select(Run).where(Run.id.in_(failing_ids))):
        assert run.return_success is False
        log = committed.db.scalar(select(RunLog.content).where(RunLog.run_id == run.id))
        assert log.count("is unresponsive") == 1
    fail_times = committed.db.scalars(select(Job.fail_times).where(Job.id.in_(job_titles))).all()
    assert fail_times == [1] * len(job_titles)
    for run in committed.db.scalars(select(Run).where(Run.id.in_(queued_ids))):
        assert (run.worker_id, run.enqueue_dts, run.return_dts) == (None, None, None)
    assert scheduler_errors(caplog) == []
