"""Under CI (`CI=true`), a services test that skips fails instead.

`.ci/run` installs every server these tests start (PostgreSQL from the package registry, the
rest with the test extra), so a skip there means a server is missing, and `make test-services`
would pass having run nothing. Outside CI a skip stays a skip, with its reason (what to install).
Registered by tests/services/conftest.py for the tests under tests/services only."""

from __future__ import annotations

import os

import pytest


def under_ci() -> bool:
    """Whether `CI` is set to true (as CI services set it; `1` too)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and under_ci():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where .ci/run installs every server: {reason}"
