"""Suite-wide fixtures: no test may reach a remote host (local servers on 127.0.0.1 still work)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qwenkit.testing import block_remote_network


@pytest.fixture(autouse=True)
def _no_remote_network() -> Iterator[None]:
    with block_remote_network():
        yield
