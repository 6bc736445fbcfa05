"""The test suite. Its plugin modules (tests/conftest.py's ``pytest_plugins``) are imported
by conftest.py before pytest loads them as plugins: registered here, first, their asserts
are rewritten all the same."""

import pytest

pytest.register_assert_rewrite("tests.oidc_provider", "tests.scenarios", "tests.log_guard")
