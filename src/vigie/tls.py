"""TLS on a listener: settings, the server SSLContext, and reloading renewed files.

    listen:
      tls:
        cert_file: /etc/vigie/tls/tls.crt     # PEM chain, leaf first
        key_file: /etc/vigie/tls/tls.key
        client_ca_file: /etc/vigie/tls/ca.crt # optional: machine clients with certificates
        client_auth: required                 # none | optional | required
        min_version: "1.2"                    # "1.2" | "1.3"
        reload_seconds: 30                    # how often the files are checked for renewal

TLS 1.2 is the floor (1.0/1.1 are never offered), with the forward-secret AEAD
suites only. The context is built once; when cert-manager (or an operator)
renews the files, `ServerTLS.reload_if_changed()` loads them into the live
context, so new handshakes get the new certificate and open connections are
untouched. A renewal that does not load (a key that does not match, a
half-written file) is refused and the previous certificate keeps serving: the
new files are first loaded into a scratch context from one in-memory copy, then
that same copy into the live one. Trust anchors of `client_ca_file` can be
added by a reload but not withdrawn: removing a CA needs a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("vigie.tls")

CLIENT_AUTH = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
               "required": ssl.CERT_REQUIRED}
MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.2 suites: ECDHE (forward secrecy) with AEAD only; TLS 1.3 suites are OpenSSL's defaults.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth", "min_version",
            "reload_seconds"}


@dataclass(frozen=True, slots=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth: str = "none"
    min_version: str = "1.2"
    reload_seconds: float = 30.0


class SettingsReader(Protocol):
    """What config.py's reader offers: errors with file/line, typed values, paths."""

    def error(self, path: tuple[str | int, ...], message: str) -> Exception: ...
    def mapping(self, raw: Any, path: tuple[str | int, ...],
                allowed: set[str]) -> dict[str, Any]: ...
    def path(self, raw: Any, key: tuple[str | int, ...]) -> Path: ...


def parse_tls(raw: Any, where: tuple[str | int, ...], r: SettingsReader) -> TLSSettings | None:
    """The `tls` mapping of a listener (None: plain HTTP), checked against the files."""
    if raw is None:
        return None
    item = r.mapping(raw, where, TLS_KEYS)
    for key in ("cert_file", "key_file"):
        if item.get(key) is None:
            raise r.error((*where, key), "missing required key")
    ca_raw = item.get("client_ca_file")
    ca = None if ca_raw is None else r.path(ca_raw, (*where, "client_ca_file"))
    client_auth = item.get("client_auth", "required" if ca is not None else "none")
    if client_auth not in CLIENT_AUTH:
        raise r.error((*where, "client_auth"), "must be none, optional or required")
    if client_auth != "none" and ca is None:
        raise r.error((*where, "client_ca_file"),
                      f"client_auth {client_auth} needs the CA that signs client certificates")
    min_version = str(item.get("min_version", "1.2"))
    if min_version not in MIN_VERSIONS:
        raise r.error((*where, "min_version"), 'must be "1.2" or "1.3"')
    reload_seconds = item.get("reload_seconds", 30)
    if isinstance(reload_seconds, bool) or not isinstance(reload_seconds, int | float) \
            or reload_seconds <= 0:
        raise r.error((*where, "reload_seconds"), "must be a positive number of seconds")
    settings = TLSSettings(
        cert_file=r.path(item["cert_file"], (*where, "cert_file")),
        key_file=r.path(item["key_file"], (*where, "key_file")),
        client_ca_file=ca, client_auth=client_auth, min_version=min_version,
        reload_seconds=float(reload_seconds))
    try:
        ServerTLS(settings)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise r.error(where, f"cannot load the certificate and key: {_reason(exc)}") from exc
    return settings


class ServerTLS:
    """The live server context of one listener and the file state it was loaded from."""

    def __init__(self, settings: TLSSettings) -> None:
        self.settings = settings
        self._stamp = self._files_stamp()
        self.context = self._new_context()
        self._load_into(self.context, *self._read())

    def reload_if_changed(self) -> bool:
        """Load renewed files into the live context; False when unchanged or refused."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        try:
            pem = self._read()
            self._load_into(self._new_context(), *pem)  # refuses a bad pair without harm
            self._load_into(self.context, *pem)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error("TLS certificate renewal refused, the previous one keeps serving: %s",
                      _reason(exc))
            return False
        self._stamp = stamp
        log.info("TLS certificate reloaded from %s", self.settings.cert_file)
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Check the files every `reload_seconds` until `stop` is set."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.reload_seconds)
            if not stop.is_set():
                self.reload_if_changed()

    def _new_context(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = MIN_VERSIONS[s.min_version]
        context.set_ciphers(TLS12_CIPHERS)
        context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
        context.options |= ssl.OP_NO_RENEGOTIATION
        context.verify_mode = CLIENT_AUTH[s.client_auth]
        return context

    def _read(self) -> tuple[bytes, bytes, bytes | None]:
        s = self.settings
        ca = s.client_ca_file.read_bytes() if s.client_ca_file is not None else None
        return s.cert_file.read_bytes(), s.key_file.read_bytes(), ca

    @staticmethod
    def _load_into(context: ssl.SSLContext, cert: bytes, key: bytes, ca: bytes | None) -> None:
        # load_cert_chain reads files only: one private copy of the bytes read, removed at once.
        with tempfile.TemporaryDirectory(prefix="vigie-tls-") as folder:
            cert_path, key_path = Path(folder, "cert.pem"), Path(folder, "key.pem")
            _write_private(cert_path, cert)
            _write_private(key_path, key)
            context.load_cert_chain(cert_path, key_path)
        if ca is not None:
            context.load_verify_locations(cadata=ca.decode("ascii", errors="strict"))

    def _files_stamp(self) -> tuple[tuple[int, int, int], ...]:
        s = self.settings
        paths = [s.cert_file, s.key_file] + ([s.client_ca_file] if s.client_ca_file else [])
        stamps = []
        for path in paths:
            try:
                info = path.stat()
            except OSError:
                stamps.append((0, 0, 0))
                continue
            stamps.append((info.st_mtime_ns, info.st_size, info.st_ino))
        return tuple(stamps)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _reason(exc: BaseException) -> str:
    """A loading failure for the operator: the OS error or OpenSSL's reason code, no data."""
    if isinstance(exc, OSError) and exc.strerror:
        name = getattr(exc, "filename", None)
        return f"{exc.strerror}{f' ({name})' if name else ''}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return type(exc).__name__

