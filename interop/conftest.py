"""`make interop`: Vigie against a real OpenID Connect server (oidc-provider, two realms).

Not collected by the plain `pytest` of tests/ (pyproject's testpaths): `make interop`
installs oidc-provider with npm into build/interop (VIGIE_INTEROP_DIR) and runs
`pytest interop`. Without Node or that install the suite fails under CI=true and is
skipped elsewhere.

Session fixtures: the OIDC server (`idp`), a scripted upstream, and one `vigie serve`
process configured for both realms: `care` by OIDC discovery, `lab` by its jwks_url,
with short refresh and staleness bounds so that rotation, withdrawal and outage are
observed in seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from interop_support import (  # noqa: E402 - the folder is not a package
    INSTALL_DIR,
    SERVER_SCRIPT,
    START_TIMEOUT,
    Config,
    Idp,
    VigieProcess,
    wait_for,
    write_config,
)
from support.harness import ScriptedUpstream  # noqa: E402
from support.servers import free_port, serve_in_thread  # noqa: E402


def _require(condition: bool, message: str) -> None:
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)



@pytest.fixture(scope="session")
def idp() -> Iterator[Idp]:
    node = shutil.which("node")
    _require(node is not None, "node is required for the interop suite (Node 20 or later)")
    _require((INSTALL_DIR / "node_modules" / "oidc-provider").is_dir(),
             f"oidc-provider is not installed in {INSTALL_DIR}: run `make interop`")
    assert node is not None
    port = free_port()
    process = subprocess.Popen([node, str(SERVER_SCRIPT), str(INSTALL_DIR), str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until READY or exit
        assert line.startswith("READY"), f"the OIDC server did not start: {line!r}"
        server = Idp(port, process)
        yield server
        server.http.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def upstream() -> Iterator[tuple[ScriptedUpstream, str]]:
    scripted = ScriptedUpstream()
    scripted.reply(json={"id": "42", "name": "Jeanne Synthétique", "nir": "269054958815780",
                         "sex": "F"})
    with serve_in_thread(scripted.app()) as url:
        yield scripted, url


@pytest.fixture(scope="session")
def config(tmp_path_factory: pytest.TempPathFactory, idp: Idp,
           upstream: tuple[ScriptedUpstream, str]) -> Config:
    return write_config(tmp_path_factory.mktemp("interop"), idp, upstream[1])


@pytest.fixture(scope="session")
def vigie(config: Config) -> Iterator[VigieProcess]:
    process = VigieProcess(config, "vigie")
    try:
        wait_for(process.up, START_TIMEOUT, "vigie to listen")
        wait_for(process.ready, START_TIMEOUT, "vigie to be ready (both realms' keys)")
        yield process
    finally:
        process.stop()


@pytest.fixture(autouse=True)
def _idp_is_up(idp: Idp) -> None:
    idp.control("care", "up")
