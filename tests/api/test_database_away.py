"""While the database is away the app answers 503 with a JSON error and
Retry-After (never a 500), and a connection that died with its server is
replaced instead of failing the next request."""
import pytest
import webtest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jobrunner import main
from jobrunner.models import get_engine, normalize_url
from jobrunner.signing import compute_signature
from tests.conftest import app_settings


@pytest.fixture
def app_without_database(tmp_path, mail_sink):
    # A SQLite file in a folder that does not exist: every connection fails.
    url = f"sqlite:///{tmp_path / 'missing' / 'jobrunner.sqlite'}"
    return webtest.TestApp(main({}, **app_settings(url, mail_sink.port)))


def assert_unavailable(response):
    assert response.status_code == 503, response.text[:500]
    assert response.content_type == "application/json"
    assert "database" in response.json["error"]
    assert int(response.headers["Retry-After"]) > 0


def test_a_signed_request_is_answered_503_when_the_database_is_away(app_without_database):
    path = "/api/v1/run/?state=enqueueable"
    signature = compute_signature("secret", "GET", path, b"")
    response = app_without_database.get(
        path, headers={"Authorization": f"ApiKey some-worker:{signature}"}, expect_errors=True)
    assert_unavailable(response)


def test_a_login_is_answered_503_when_the_database_is_away(app_without_database):
    response = app_without_database.get("/login")
    token = response.text.split('name="csrf-token" content="')[1].split('"')[0]
    response = app_without_database.post(
        "/login", {"username": "someone", "password": "secret", "csrf_token": token},
        headers={"Accept": "application/json"}, expect_errors=True)
    assert_unavailable(response)


@pytest.mark.postgres
def test_a_pooled_connection_ended_by_the_server_is_replaced(database_url, is_postgres):
    if not is_postgres:
        pytest.skip("pg_terminate_backend needs PostgreSQL")
    engine = get_engine({"sqlalchemy.url": database_url, "sqlalchemy.pool_size": "1"})
    admin = create_engine(make_url(normalize_url(database_url)), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        # The one pooled connection is dead now; the next use must not fail.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()
        admin.dispose()
