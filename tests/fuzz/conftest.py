"""The fuzz suite shares the API tests' fixtures."""
from tests.api.conftest import other_world  # noqa: F401
