"""Fixtures for guard tests through the proxy, on both state backends.

`backend` is "memory" or "redis" (VIGIE_TEST_REDIS; locally skipped without Redis, a
failure when CI is set). `stacks(policy=..., ...)` starts a Harness with a fresh client
and the patient upstream; everything it started is stopped and its Redis keys deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.guard import REDIS_URL, require_redis
from support.guard_e2e import forget_client, guard_config, new_client, policy_text, start
from support.harness import Harness, Keys


@dataclass
class Stack:
    h: Harness
    client: str

    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, sub: str = "dr-house") -> str:
        if sub not in self.tokens:
            self.tokens[sub] = self.h.token(self.client, sub, scope="patient.read patient.search")
        return self.tokens[sub]

    def get(self, path: str, sub: str = "dr-house") -> Any:
        return self.h.get(path, token=self.token(sub))

    def flush(self) -> None:
        """Write the guard's late facts and quarantines to its store now, on vigie's loop:
        a test never waits for the flush timer (it can be late on a loaded machine)."""
        assert self.h.vigie is not None
        self.h.run(self.h.vigie.stages.guard.store.flush())


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()  # one RSA key for the folder: generating one per stack is slow


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_redis()
    return str(request.param)


StackFactory = Callable[..., Stack]


@pytest.fixture
def stacks(tmp_path: Path, backend: str, keys: Keys) -> Iterator[StackFactory]:
    started: list[Stack] = []

    def make(*, client: str | None = None, redis_url: str | None = None, admin: bool = True,
             name: str = "a", **policy: Any) -> Stack:
        client = client or (started[0].client if started else new_client())
        folder = tmp_path / name
        folder.mkdir()
        url = redis_url or (REDIS_URL if backend == "redis" else None)
        config, env = guard_config(folder, url, admin=admin)
        h = start(Harness(folder, {"client.yaml": policy_text(client, **policy)},
                          config=config, env=env, keys=keys))
        stack = Stack(h, client)
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.h.__exit__(None, None, None)
    if backend == "redis" and started:
        forget_client(started[0].client)
