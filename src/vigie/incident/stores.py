"""Where revocations and switches live: the store protocol, in-process and file back ends.

`memory`: this process only (lost on restart: the API says so). `file`: one JSON
document, replaced atomically on every change, re-read when its modification time
changes; for one replica (or replicas sharing a volume). Redis, for many replicas, is
in `redis_store.py`. A store raises `StoreUnavailable` when it cannot confirm a change.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Protocol

import orjson

from vigie.incident.model import Containment, Revocation

Entries = tuple[list[Revocation], list[Containment]]


class StoreUnavailable(Exception):
    """The store did not confirm (or could not be read); never carries a value."""


def decode_entries(data: dict[str, Any]) -> Entries:
    """Entries from their JSON form; a damaged document is unavailable, never half-read."""
    try:
        return ([Revocation.from_json(item) for item in data.get("revocations", [])],
                [Containment.from_json(item) for item in data.get("containments", [])])
    except (KeyError, TypeError, ValueError):
        raise StoreUnavailable("damaged incident state") from None


class IncidentStore(Protocol):
    backend: str
    persistent: bool

    async def version(self) -> str: ...

    async def load(self) -> Entries: ...

    async def put_revocation(self, revocation: Revocation) -> None: ...

    async def delete_revocation(self, revocation_id: str) -> bool: ...

    async def put_containment(self, containment: Containment) -> None: ...

    async def delete_containment(self, scope: str) -> bool: ...

    async def sweep(self, now: float) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    backend = "memory"
    persistent = False

    def __init__(self) -> None:
        self._revocations: dict[str, Revocation] = {}
        self._containments: dict[str, Containment] = {}
        self._version = 0

    async def version(self) -> str:
        return str(self._version)

    async def load(self) -> Entries:
        return list(self._revocations.values()), list(self._containments.values())

    async def put_revocation(self, revocation: Revocation) -> None:
        self._revocations[revocation.id] = revocation
        self._version += 1

    async def delete_revocation(self, revocation_id: str) -> bool:
        self._version += 1
        return self._revocations.pop(revocation_id, None) is not None

    async def put_containment(self, containment: Containment) -> None:
        self._containments[containment.scope] = containment
        self._version += 1

    async def delete_containment(self, scope: str) -> bool:
        self._version += 1
        return self._containments.pop(scope, None) is not None

    async def sweep(self, now: float) -> None:
        for key in [k for k, r in self._revocations.items() if r.expires <= now]:
            del self._revocations[key]
        for key in [k for k, c in self._containments.items() if c.expires <= now]:
            del self._containments[key]

    async def close(self) -> None:
        return None


class FileStore:
    """One JSON document `{"revocations": [...], "containments": [...]}`."""

    backend = "file"
    persistent = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def version(self) -> str:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return "absent"
        except OSError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        return f"{stat.st_mtime_ns}:{stat.st_size}:{stat.st_ino}"

    async def load(self) -> Entries:
        return decode_entries(self._read())

    async def put_revocation(self, revocation: Revocation) -> None:
        await self._change(lambda r, c: ({**r, revocation.id: revocation}, c))

    async def delete_revocation(self, revocation_id: str) -> bool:
        removed = await self._change(lambda r, c: (
            {k: v for k, v in r.items() if k != revocation_id}, c))
        return removed[0] != 0

    async def put_containment(self, containment: Containment) -> None:
        await self._change(lambda r, c: (r, {**c, containment.scope: containment}))

    async def delete_containment(self, scope: str) -> bool:
        removed = await self._change(lambda r, c: (
            r, {k: v for k, v in c.items() if k != scope}))
        return removed[1] != 0

    async def sweep(self, now: float) -> None:
        await self._change(lambda r, c: ({k: v for k, v in r.items() if v.expires > now},
                                         {k: v for k, v in c.items() if v.expires > now}))

    async def close(self) -> None:
        return None

    async def _change(self, change: Any) -> tuple[int, int]:
        """Apply `change(revocations, containments)`; returns how many of each it removed."""
        async with self._lock:
            revocations, containments = await self.load()
            before_r = {r.id: r for r in revocations}
            before_c = {c.scope: c for c in containments}
            after_r, after_c = change(before_r, before_c)
            document = orjson.dumps({
                "revocations": [r.as_json() for r in after_r.values()],
                "containments": [c.as_json() for c in after_c.values()],
            }, option=orjson.OPT_INDENT_2)
            temporary = self.path.with_name(self.path.name + ".tmp")
            try:
                with open(temporary, "wb") as handle:
                    handle.write(document)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.path)
            except OSError as exc:
                raise StoreUnavailable(type(exc).__name__) from None
            return (len(before_r.keys() - after_r.keys()), len(before_c.keys() - after_c.keys()))

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StoreUnavailable(type(exc).__name__) from None
        try:
            data = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            raise StoreUnavailable("JSONDecodeError") from None
        if not isinstance(data, dict):
            raise StoreUnavailable("not a JSON object")
        return data
