"""Integration tests: tests marked ``sandbox`` need bubblewrap; they skip without it (fail in CI, see helpers)."""

from __future__ import annotations

import pytest

from tests.sandbox.helpers import require_bubblewrap


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("sandbox") is not None:
        require_bubblewrap()
