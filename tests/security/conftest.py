"""The security tests share the API tests' fixtures."""
from tests.api.conftest import admin, anonymous, other_world, session_for  # noqa: F401
