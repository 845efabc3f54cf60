"""Fixtures of the SOC suite: one RSA key for all, a harness with the SOC policies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.harness import Harness, Keys
from support.soc import GUARD_ENV, SOC_POLICIES


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()  # RSA generation is slow: one key for the whole suite


@pytest.fixture
def soc(tmp_path: Path, keys: Keys) -> Iterator[Harness]:
    with Harness(tmp_path, SOC_POLICIES, env=GUARD_ENV, keys=keys) as h:
        yield h
