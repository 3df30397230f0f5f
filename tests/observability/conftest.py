"""The scheduler's and the admin CLI's fixtures, for the tests of the
duties (webhooks, retention) and of the audit log."""
from tests.admin.conftest import cli, empty_database  # noqa: F401
from tests.scheduling.conftest import (  # noqa: F401
    committed,
    mail_tx,
    postgres_only,
    scheduler_settings,
)
