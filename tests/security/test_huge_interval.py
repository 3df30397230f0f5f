"""A huge interval is a 400; one stored before the bound makes a return a
reschedule error, never a 500."""
import pytest

from jobrunner.models import Job, Run
from tests.api.conftest import assert_error
from tests.conftest import now, uri


@pytest.mark.parametrize("interval, kind", [(2147483647, "HOUR"), (500000, "MONTH"),
                                            (600000, "WEEK"), (3000000, "DAY")])
def test_an_interval_past_year_9999_is_400(admin, world, dbsession, interval, kind):
    body = assert_error(admin.patch(uri("job", world.job), {"reschedule_interval": interval,
                                                             "reschedule_interval_type": kind}, status=400), 400)
    assert "9999" in body["errors"]["reschedule_interval"]
    dbsession.expire_all()
    assert dbsession.get(Job, world.job.id).reschedule_interval is None


def test_a_long_but_possible_interval_is_fine(admin, world):
    res = admin.patch(uri("job", world.job), {"reschedule_interval": 100, "reschedule_interval_type": "MONTH"})
    assert res.json["reschedule_interval"] == 100


def test_an_overflow_at_return_is_a_reschedule_error(world, factory, as_worker, dbsession, mailbox):
    job = factory.job(world.template, world.pool, reschedule_interval=2147483647,
                      reschedule_interval_type="HOUR", notification_addresses="j@example.com")
    run = factory.run(job)
    client = as_worker(world.worker)
    client.patch(uri("run", run), {"enqueue_dts": now().isoformat()})
    client.patch(uri("run", run), {"start_dts": now().isoformat()})
    res = client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True})
    assert res.status_int == 202
    message = mailbox.wait_for(1)[0]
    assert message["subject"] == f"Reschedule error for: {job.title}"
    dbsession.expire_all()
    assert dbsession.get(Run, run.id).return_dts is not None
