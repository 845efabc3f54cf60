"""Logs as text or JSON: one schema with the security events, no personal data, no tracebacks."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import orjson
import pytest

from support.configs import minimal_config
from support.harness import AUDIENCE, ISSUER, Keys
from support.servers import free_socket
from vigie.config import load_settings
from vigie.errors import ConfigError
from vigie.guard.events import SecurityEvents
from vigie.telemetry import logs

NIR = "2 84 05 75 123 456 78"  # synthetic, shape only


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("vigie.telemetry").joinpath("log-schema.json")
                        .read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Switch logging to a buffer; restore the root logger afterwards."""
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def _failing() -> None:
    raise ValueError(f"patient {NIR} not found")  # a library quoting a value


def test_json_logs_follow_the_schema_and_reduce_exceptions_to_their_type(
        captured: io.StringIO,
        validator: jsonschema.Draft202012Validator) -> None:
    buffer = captured
    logs.configure("json", "info", stream=buffer)
    log = logging.getLogger("vigie.test")
    log.info("policies loaded: %d clients", 3)
    log.debug("below the level")
    try:
        _failing()
    except ValueError:
        log.exception("upstream answer could not be read")
    logging.getLogger("httpx").info("HTTP Request: GET http://legacy/patients/42")
    lines = [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [
        "policies loaded: 3 clients", "upstream answer could not be read"]
    for line in lines:
        validator.validate(line)
    assert lines[0]["level"] == "info" and lines[0]["logger"] == "vigie.test"
    assert lines[1]["error_type"] == "ValueError"
    text = buffer.getvalue()
    assert NIR not in text and "Traceback" not in text and "patients/42" not in text


def test_text_logs_name_an_exception_without_its_message(
        captured: io.StringIO) -> None:
    buffer = captured
    logs.configure("text", "warning", stream=buffer)
    log = logging.getLogger("vigie.test")
    log.info("not at warning")
    try:
        _failing()
    except ValueError:
        log.exception("upstream answer could not be read")
    text = buffer.getvalue()
    assert text.count("\n") == 1
    assert "WARNING" not in text and "ERROR vigie.test upstream answer" in text
    assert text.rstrip().endswith("[ValueError]")
    assert NIR not in text and "Traceback" not in text


def test_security_events_share_the_schema(tmp_path: Path,
                                          validator: jsonschema.Draft202012Validator) -> None:
    events = SecurityEvents(str(tmp_path / "events.jsonl"))
    events.emit("quarantine", client="gp-frontdesk", principal="psn-abc", signal="decoy",
                score=1.0, action="quarantine")
    events.close()
    line = orjson.loads((tmp_path / "events.jsonl").read_bytes())
    validator.validate(line)
    assert line["kind"] == "security_event" and line["logger"] == "vigie.security"
    with pytest.raises(jsonschema.ValidationError):  # a log may not carry undeclared fields
        validator.validate({**line, "kind": "log", "message": "x", "body": "{}"})




def test_log_settings_come_from_the_file_or_the_environment(tmp_path: Path) -> None:
    settings = load_settings(minimal_config(tmp_path, "log_format: json\nlog_level: debug\n"), {})
    assert (settings.log_format, settings.log_level) == ("json", "debug")
    settings = load_settings(minimal_config(tmp_path, ""), {"VIGIE_LOG_FORMAT": "json"})
    assert (settings.log_format, settings.log_level) == ("json", "info")
    with pytest.raises(ConfigError, match=r"vigie.yaml:3: must be one of text, json "
                                          r"\(key 'log_format'\)"):
        load_settings(minimal_config(tmp_path, "log_format: xml\n"), {})
    with pytest.raises(ConfigError, match="key 'log_level'"):
        load_settings(minimal_config(tmp_path, ""), {"VIGIE_LOG_LEVEL": "verbose"})


def test_vigie_serve_writes_only_schema_lines_to_stderr_in_json(
        tmp_path: Path, validator: jsonschema.Draft202012Validator) -> None:
    keys = Keys()
    (tmp_path / "jwks.json").write_bytes(orjson.dumps(keys.jwks()))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "app.yaml").write_text(
        "client: app\nroutes:\n  - name: items\n    methods: [GET]\n    path: /items/{id}\n")
    proxy, admin = free_socket(), free_socket()
    ports = proxy.getsockname()[1], admin.getsockname()[1]
    proxy.close()
    admin.close()
    config = minimal_config(tmp_path, (
        f"listen: {{host: 127.0.0.1, port: {ports[0]}}}\n"
        f"admin: {{host: 127.0.0.1, port: {ports[1]}}}\nlog_format: json\n"
        f"audit: {{path: {tmp_path / 'audit.jsonl'}}}\n"
        f"issuers:\n  - issuer: {ISSUER}\n    audiences: [{AUDIENCE}]\n"
        "    jwks_file: ./jwks.json\n"))
    proc = subprocess.Popen([sys.executable, "-m", "vigie", "serve", "--config", str(config)],
                            stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        assert proc.stderr is not None
        first: dict[str, Any] = {}
        for raw in proc.stderr:  # waits for the start-up line, whatever the machine's speed
            first = orjson.loads(raw)
            validator.validate(first)
            if first["message"].startswith("vigie serving"):
                break
        assert first.get("message", "").startswith("vigie serving")
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
    lines = [orjson.loads(raw) for raw in rest.splitlines() if raw.strip()]
    for line in lines:
        validator.validate(line)
    assert any(line["message"] == "vigie stopped" for line in lines)
