"""What the guard's parts share: built once by the `Guard` facade, handed to each part."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vigie.guard.compiled import Compiler
from vigie.guard.detection import Detector
from vigie.guard.holds import Holds
from vigie.guard.patients import PatientRefs
from vigie.guard.quarantines import Quarantines
from vigie.guard.signals import GuardTuning
from vigie.guard.store import GuardStore


@dataclass(frozen=True, slots=True)
class Parts:
    store: GuardStore
    tuning: GuardTuning
    quarantines: Quarantines  # quarantines, client alert, anomaly gauges
    detector: Detector  # each principal's enumeration signals
    compiler: Compiler  # limits, budgets, route plans of a policy
    refs: PatientRefs  # patient digests, decoys
    holds: Holds  # leases of admitted requests until settled
    pseudonym: Callable[[str, str], str]  # (client, subject) -> principal pseudonym
    clients: set[str]  # served here: their alerts are refreshed
