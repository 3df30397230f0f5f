"""The failure, reschedule and pool mails through the API, received by a real SMTP
server: one message per event, every recipient once."""
from datetime import time

from tests.conftest import now, uri

ADMIN = "admin@example.com"  # jobrunner.admin_emails of the test app


def claim_and_start(client, run):
    client.patch(uri("run", run), {"enqueue_dts": now().isoformat()})
    client.patch(uri("run", run), {"start_dts": now().isoformat(), "pid": 4242})


def fail(client, run):
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": False})


def recipients_of(message):
    return sorted(address.lower() for address in message["rcpt"])


def addressed_world(world):
    """Addresses on every level, with repeats across and within levels."""
    world.job.notification_addresses = "job@example.com\nshared@example.com\n\njob@example.com"
    world.template.notification_addresses = "template@example.com\nSHARED@example.com"
    world.project.notification_addresses = "project@example.com\n" + ADMIN
    world.pool.notification_addresses = "pool@example.com\njob@example.com"
    return sorted([ADMIN, "job@example.com", "pool@example.com", "project@example.com",
                   "shared@example.com", "template@example.com"])


def test_a_failed_run_sends_one_message_to_every_address_once_with_the_log(
    world, factory, as_worker, mailbox
):
    expected = addressed_world(world)
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim_and_start(client, run)
    log_lines = "".join(f"line {i}: {'x' * 60}\n" for i in range(200)) + "boom: exit status 3\n"
    client.post("/api/v1/run_log/", {"run": uri("run", run), "content": log_lines})
    fail(client, run)

    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    message = messages[0]
    assert message["subject"] == f"Run error for: {world.job.title}"
    assert recipients_of(message) == expected
    to_header = message["message"]["To"].lower()
    assert all(to_header.count(address) == 1 for address in expected)
    body = message["body"].replace("\r\n", "\n")
    assert log_lines in body
    assert f"Run id:     {run.id}" in body
    assert f"Pool:       {world.pool.title}" in body
    assert "Manual:     no" in body and "Killed:     no" in body
    assert f"http://jobrunner.example/runs/{run.id}" in body
    assert world.job.script_content in body
    returned = [line for line in body.splitlines() if line.startswith("Returned:")][0]
    assert returned.endswith((" CET", " CEST"))  # jobrunner.timezone = Europe/Amsterdam


def test_a_successful_run_sends_nothing(world, factory, as_worker, mailbox):
    addressed_world(world)
    run = factory.run(world.job)
    client = as_worker(world.worker)
    claim_and_start(client, run)
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True})
    # Mail is delivered inside the request's commit: nothing can be on its way.
    assert mailbox.messages == []


def test_a_killed_manual_run_says_so(world, factory, as_worker, as_user, mailbox):
    world.job.notification_addresses = "job@example.com"
    run = factory.run(world.job, is_manual=True)
    client = as_worker(world.worker)
    claim_and_start(client, run)
    user = as_user(groups=[world.admins])
    kill = user.post("/api/v1/kill_request/", {"run": uri("run", run)}).json
    client.patch(kill["resource_uri"], {"enqueue_dts": now().isoformat()})
    client.patch(kill["resource_uri"], {"execute_dts": now().isoformat()})
    fail(client, run)

    message = mailbox.wait_for(1)[0]
    assert "Manual:     yes" in message["body"]
    assert "Killed:     yes" in message["body"]


def test_a_failed_reschedule_sends_one_message_with_the_reason(world, factory, as_worker, mailbox):
    expected = addressed_world(world)
    job = factory.job(
        world.template, world.pool, reschedule_interval=1, reschedule_interval_type="DAY",
        excludes=[(time(0, 0), time(23, 59, 59, 999999))],
        notification_addresses=world.job.notification_addresses,
    )
    run = factory.run(job)
    client = as_worker(world.worker)
    claim_and_start(client, run)
    client.patch(uri("run", run), {"return_dts": now().isoformat(), "return_success": True})

    messages = mailbox.wait_for(1)
    assert len(messages) == 1
    assert messages[0]["subject"] == f"Reschedule error for: {job.title}"
    assert recipients_of(messages[0]) == expected
    assert "no time within a day escapes the reschedule excludes" in messages[0]["body"]
    assert f"http://jobrunner.example/jobs/{job.id}" in messages[0]["body"]


def test_a_hanging_mail_server_holds_up_no_request(world, factory, connection, database_url):
    """A mail server that accepts and never answers: the failed run's return
    is answered at once, the mail is left to the sender thread (which gives
    up after the mailer's timeout and logs it)."""
    import socket
    import time

    import webtest
    from sqlalchemy.orm import sessionmaker

    from jobrunner import main
    from tests.conftest import WorkerClient, app_settings

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        app = main({}, **app_settings(database_url, silent.getsockname()[1],
                                      **{"jobrunner.mail_in_background": "true"}))
        app.registry["dbsession_factory"] = sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        client = WorkerClient(webtest.TestApp(app), world.worker)
        runs = [factory.run(world.job), factory.run(factory.job(world.template, world.pool))]
        for run in runs:
            claim_and_start(client, run)
        started = time.monotonic()
        for run in runs:
            fail(client, run)
        # Each mail would wait for the mailer's 10 s timeout within the request.
        assert time.monotonic() - started < 5
    finally:
        silent.close()
