"""The soak's clients: a clinic's doctors, a research job paging searches, and an extractor
walking ids; every response is checked for a NIR and for an undocumented status."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from soak.stack import Service
from vigie.demo.issuer import DemoIssuer
from vigie.demo.legacy_api import patient_store
from vigie.demo.patients import DEFAULT_SEED, patient
from vigie.minimize import nir

DOCUMENTED = frozenset({200, 400, 401, 403, 404, 429, 502, 503, 504})
# A load balancer retries an idempotent request once when the connection failed before an
# answer (a replica draining closes its idle keep-alive connections).
RETRYABLE = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)
EXTRACTION_CAP = 400  # an episode not refused within this many requests counts as not stopped


@dataclass
class Episode:
    """One extraction attempt by a fresh account."""

    records: int = 0
    patients: set[str] = field(default_factory=set)
    requests: int = 0
    stopped_by: str = ""
    cut_short: bool = False  # the soak ended during the episode: no verdict

    @property
    def stopped(self) -> bool:
        return bool(self.stopped_by)


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    nir_leaks: int = 0
    retried: int = 0
    episodes: list[Episode] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


class Traffic:
    def __init__(self, replicas: list[Service], urls: dict[str, str], issuer: DemoIssuer,
                 patient_count: int, leak_file: Path | None = None) -> None:
        self.replicas, self.urls, self.issuer = replicas, urls, issuer
        self.leak_file = leak_file
        self.tally = Tally()
        records = [patient(pid, DEFAULT_SEED) for pid in range(1, patient_count + 1)]
        self.nirs = frozenset(record["nir"] for record in records)
        self.own_patients = [str(r["id"]) for r in records if r["practice_id"] == "P1"]
        self.store_count = patient_store(patient_count).count
        self._turn = 0
        self._http: dict[str, httpx.AsyncClient] = {}

    async def __aenter__(self) -> Traffic:
        for replica in self.replicas:
            self._http[replica.name] = httpx.AsyncClient(
                base_url=self.urls[replica.name], timeout=15,
                limits=httpx.Limits(max_connections=32))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._http.values():
            await client.aclose()

    def _pick(self) -> Service:
        """Round robin over the replicas a load balancer believes up."""
        for _ in range(len(self.replicas) * 2):
            self._turn += 1
            replica = self.replicas[self._turn % len(self.replicas)]
            if replica.up:
                return replica
        return self.replicas[0]

    async def get(self, path: str, token: str) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {token}"}
        for attempt in range(2):
            replica = self._pick()
            try:
                response = await self._http[replica.name].get(path, headers=headers)
            except RETRYABLE as exc:
                if attempt == 0:
                    self.tally.retried += 1
                    continue
                self.tally.failures[f"transport:{type(exc).__name__}"] += 1
                return None
            except httpx.TimeoutException:
                self.tally.failures["timeout"] += 1
                return None
            self._check(response)
            return response
        return None

    def _check(self, response: httpx.Response) -> None:
        self.tally.statuses[response.status_code] += 1
        if response.status_code not in DOCUMENTED:
            self.tally.failures[f"status:{response.status_code}"] += 1
        text = response.text
        if any(value in text for value in self.nirs) or nir.contains(text):
            self.tally.nir_leaks += 1
            if self.leak_file is not None:  # synthetic patients: kept to reproduce the leak
                with self.leak_file.open("ab") as out:
                    out.write(orjson.dumps({"path": str(response.request.url),
                                            "status": response.status_code,
                                            "headers": dict(response.headers),
                                            "body": text}) + b"\n")

    async def doctor(self, sub: str, until: float) -> None:
        rng = random.Random(sub)
        pool = rng.sample(self.own_patients, min(30, len(self.own_patients)))
        while time.monotonic() < until:
            token = self.issuer.mint("clinic", sub, ["patient.read"], practice_id="P1")
            for _ in range(20):
                if time.monotonic() >= until:
                    return
                await self.get(f"/patients/{rng.choice(pool)}", token)
                await asyncio.sleep(0.15)

    async def research(self, until: float) -> None:
        rng = random.Random(7)
        while time.monotonic() < until:
            token = self.issuer.mint("research", "analyst", ["patient.search"])
            prefix = rng.choice("BCDGLMPR")
            for page in range(1, 6):
                await self.get(f"/patients?last_name={prefix}&page={page}&page_size=20", token)
                await asyncio.sleep(0.2)

    async def extractor(self, until: float) -> None:
        number = 0
        while time.monotonic() < until:
            number += 1
            episode = Episode()
            self.tally.episodes.append(episode)
            token = self.issuer.mint("clinic", f"extractor-{number}-{time.time_ns()}",
                                     ["patient.read"], practice_id="P1")
            start = random.randrange(1, self.store_count)
            for offset in range(EXTRACTION_CAP):
                if time.monotonic() >= until:
                    episode.cut_short = True
                    break
                patient_id = (start + offset) % self.store_count + 1
                response = await self.get(f"/patients/{patient_id}", token)
                episode.requests += 1
                if response is None:
                    continue
                if response.status_code == 200:
                    episode.records += 1
                    episode.patients.add(str(patient_id))
                elif response.status_code == 429:
                    episode.stopped_by = response.headers.get("vigie-decision", "429")
                    break
            await asyncio.sleep(1.0)
