"""Fixtures of the admin page tests: the API tests' logged-in clients, and
helpers that read and post the forms as a browser would."""
import html
import re

import pytest

from tests.api.conftest import admin, anonymous, other_world, quick_user, session_for  # noqa: F401


def form_fields(page, form_id="admin-form"):
    """The (name, value) pairs a browser would send for the form as shown."""
    return list(page.forms[form_id].submit_fields())


def post(client, path, fields, status=None):
    """Posts a form with the session's CSRF token (unless fields carry one)."""
    fields = list(fields.items()) if isinstance(fields, dict) else list(fields)
    if not any(name == "csrf_token" for name, _ in fields):
        fields.append(("csrf_token", client.csrf_token))
    res = client.testapp.post(path, fields, expect_errors=True)
    if status is not None:
        assert res.status_int == status, (res.status, res.text[:2000])
    return res


def get(client, path, status=200):
    """GET as the client, checking the status (UserClient.get leaves it to the caller)."""
    res = client.testapp.get(path, expect_errors=True)
    assert res.status_int == status, (path, res.status, res.text[:2000])
    return res


def error_of(page, name):
    match = re.search(rf'<p class="field-error" id="error-{name}" role="alert">([^<]*)</p>', page.text)
    return html.unescape(match.group(1)) if match else None


@pytest.fixture
def project_admin(session_for, world, factory):
    """A member of world's project admin group (and of nothing else)."""
    user = quick_user(factory, groups=[world.admins])
    return session_for(user)


@pytest.fixture
def viewer(session_for, world, factory):
    return session_for(quick_user(factory, groups=[world.viewers]))
