"""Patient references as the guard counts them: keyed digests, and the decoy records.

Stores count patients by keyed digest, so Redis never holds who saw which patient; the
key is derived from the pseudonym key, the same on every replica sharing it, so
distinct counts agree. Decoys are ids no legitimate user asks for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from functools import lru_cache

from vigie.minimize import nir
from vigie.pseudonym import Pseudonymizer


class PatientRefs:
    def __init__(self, pseudonymizer: Pseudonymizer, decoys: Collection[str]) -> None:
        self.pseudonymizer = pseudonymizer
        self.decoys = frozenset(decoys)
        self._key = pseudonymizer.token("vigie.guard", "patient-digest-key").encode()[:64]
        self._decoy_refs = lru_cache(maxsize=1024)(self._decoys_for)

    def walk_offset(self) -> int:
        """The keyed shift of numeric ids in shared observations (same on every replica)."""
        offset = hashlib.blake2b(b"walk-offset", key=self._key, digest_size=7).digest()
        return int.from_bytes(offset, "big")

    def digest(self, ref: str) -> str:
        return hashlib.blake2b(ref.encode(), key=self._key, digest_size=8).hexdigest()

    def path_patient(self, client: str, ref: str, pseudonymized: bool) -> str:
        """The digest of the reference the response's record will carry, so it counts once."""
        ref = self.pseudonymizer.token(client, ref) if pseudonymized else nir.mask_text(ref)[0]
        return self.digest(ref)

    def decoy_in(self, values: Collection[str]) -> bool:
        return bool(self.decoys) and not self.decoys.isdisjoint(values)

    def decoy_disclosed(self, client: str, patients: Collection[str]) -> bool:
        return bool(self.decoys) and bool(patients) and \
            not self._decoy_refs(client).isdisjoint(patients)

    def _decoys_for(self, client: str) -> frozenset[str]:
        # Disclosed references are ids, or their pseudonyms on routes that pseudonymize.
        return self.decoys | {self.pseudonymizer.token(client, d) for d in self.decoys}
