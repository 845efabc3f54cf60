"""Fixtures of the incident suites: one RSA key, and replicas built on demand and stopped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.guard_e2e import new_client
from support.harness import Keys
from support.incident import IncidentStack, incident_stack


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


StackFactory = Callable[..., IncidentStack]


@pytest.fixture
def stacks(tmp_path: Path, keys: Keys) -> Iterator[StackFactory]:
    started: list[IncidentStack] = []
    client = new_client()

    def make(name: str = "a", **options: Any) -> IncidentStack:
        stack = incident_stack(tmp_path / name, client, keys, **options)
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.h.__exit__(None, None, None)
