"""Which literal words may reach the usage log: never one a single principal could own.

A path segment, a query parameter name or a JSON key made of letters can be a
person's name (`/patients/by-name/Quennec`, `?Quennec=1`, `{"Morvandiau": ...}`),
and no test on its text tells `Quennec` from `patients`. So a word is written
literally only when it cannot be one person's identifier:

- every part of it (split at non-letters and at camelCase humps, compared
  case-insensitively, a plural `s` ignored) is **known vocabulary**: API and
  FHIR words (`VOCABULARY`), or a word a policy declares (route literals,
  query allow-lists, field selectors; remembered for every client); or
- it was sent by at least `min_principals` distinct principals (token issuer
  and subject). Until then it is held in memory only as a keyed digest (keyed
  BLAKE2b, a per-process random key) with the digests of the principals seen,
  never as text; a word that passes is kept in clear from then on.

Otherwise the caller writes `{}` in its place. Memory is bounded: when the
table of counted words is full it is emptied (counts restart: a word is admitted
later, never earlier).
"""

from __future__ import annotations

import hashlib
import os
import re

from vigie.policy.fhir import REQUIRED
from vigie.policy.model import ClientPolicy

DEFAULT_MIN_PRINCIPALS = 3
MAX_TRACKED_WORDS = 16384  # ~5 MB at most
MAX_ADMITTED_WORDS = 16384
MAX_POLICIES_CACHED = 64
MAX_LETTER_PARTS = 2  # single letters in a vocabulary word (`x`, `line_a`), no more

_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")

# Words of HTTP APIs and FHIR R4 that name things, never people. A surname that is also
# one of these ("Page") passes as a word: it cannot be told apart, and alone says little.
_API_WORDS = """
api apis v r fhir rest json ndjson xml csv pdf txt html me self health healthz ready livez
metadata capabilities well known openid configuration
patient person people user account practitioner organization org organisation site unit
service ward department dept hospital clinic
id ids identifier identifiers uuid ref reference references key keys code codes system
systems value values type types kind category categories status state version vid
name names first last middle family given prefix suffix full display text title label
birth date dates time datetime timestamp created updated modified deleted at on by of
from to since until before after start end period begin duration effective issued
address addresses line lines street city postcode postal zip district state country
telecom phone mobile email fax contact contacts
gender sex age deceased marital language communication nationality
nir ins insee ipp iep matricule rpps adeli finess secu social security insurance
insured beneficiary payer payor coverage
page pages pagesize size per limit offset count total cursor next prev previous first last link
links self href rel sort order asc desc filter filters q query search find lookup match
include revinclude elements summary format fields field expand embed with without
item items entry entries resource resources result results data list lists record
records bundle meta tag tags security profile extension extensions url uri
export import bulk batch job jobs download upload file files attachment attachments
document documents letter letters report reports note notes comment comments
appointment appointments encounter encounters visit visits admission admissions
stay stays bed beds room rooms schedule schedules slot slots booking bookings
observation observations lab labs test tests analysis analyses specimen sample
prescription prescriptions medication medications drug drugs dose dosage
allergy allergies condition conditions diagnosis diagnoses procedure procedures
immunization vaccine vaccination care plan team goal task tasks consent consents
invoice invoices billing bill bills claim claims payment payments amount currency
price total rate
history histories audit log logs event events message messages notification
admin purge delete create read update patch edit view get post put new old
active inactive enabled disabled valid verified primary secondary official temp
height weight unit units quantity min max low high range normal interpretation
body site method device devices performer author subject owner requester
coding codeable concept managing practice practitioner role string boolean integer
decimal uri canonical instant quantity ratio identifier narrative div
dossier dossiers sejour sejours rendez vous rdv ordonnance ordonnances medecin medecins
praticien praticiens etablissement etablissements examen examens resultat resultats
compte rendu comptes rendus courrier courriers facture factures nom noms prenom prenoms
naissance adresse adresses ville telephone portable courriel sexe recherche liste
consultation consultations hospitalisation hospitalisations sortie sorties entree entrees
lit lits chambre chambres unite unites mouvement mouvements acte actes diagnostic
diagnostics traitement traitements analyse analyses biologie imagerie radiologie
piece pieces jointe jointes utilisateur utilisateurs identite identites nda mutuelle
organisme caisse droits tiers payant montant paiement paiements statut statuts
creation modification suppression debut fin taille
""".split()

VOCABULARY: frozenset[str] = frozenset(
    set(_API_WORDS)
    | {part.lower() for name in REQUIRED for part in _PART.findall(name)}
    | {part.lower() for elements in REQUIRED.values() for element in elements
       for part in _PART.findall(element)})


def parts(word: str) -> list[str]:
    """The lower-case letter parts of a word: `birthDate` → birth, date; `by-name` → by, name."""
    return [part.lower() for part in _PART.findall(word)]


def _known_part(part: str, known: frozenset[str]) -> bool:
    if len(part) <= 1 or part in VOCABULARY or part in known:
        return True
    singular = part[:-1] if part.endswith("s") else None
    return singular is not None and (singular in VOCABULARY or singular in known)


def policy_words(policy: ClientPolicy) -> frozenset[str]:
    """The letter parts of what a client's policy declares: route literals, query names,
    field selectors (the site wrote them: they name the API, not a patient)."""
    texts: list[str] = []
    for route in policy.routes:
        texts += [segment for segment in route.segments if segment]
        texts += list(route.params)
        if route.query is not None:
            texts += list(route.query.allowed)
        if route.response is not None:
            texts.append(route.response.records.text)
            texts += [rule.selector.text for rule in route.response.fields]
    return frozenset(part for text in texts for part in parts(text))


class WordGate:
    """Admits a word into the usage log once it is vocabulary or K principals sent it."""

    def __init__(self, min_principals: int = DEFAULT_MIN_PRINCIPALS,
                 key: bytes | None = None) -> None:
        self.min_principals = max(1, min_principals)
        self._key = key if key is not None else os.urandom(32)
        self._seen: dict[bytes, set[bytes]] = {}  # word digest -> principal digests
        self._admitted: set[str] = set()
        self._policies: dict[int, tuple[ClientPolicy, frozenset[str]]] = {}

    def known(self, policy: ClientPolicy) -> frozenset[str]:
        """The policy's words, computed once per policy object (policies are immutable)."""
        cached = self._policies.get(id(policy))
        if cached is not None and cached[0] is policy:
            return cached[1]
        if len(self._policies) >= MAX_POLICIES_CACHED:
            self._policies.clear()
        words = policy_words(policy)
        self._policies[id(policy)] = (policy, words)  # the reference keeps the id unique
        return words

    def admit(self, word: str, principal: tuple[str, str],
              known: frozenset[str] = frozenset()) -> bool:
        """True when `word` may be written as is; counts `principal` (issuer, subject) for it
        otherwise."""
        if word in self._admitted:
            return True
        split = parts(word) if word.isascii() else []  # `Léa` would split into `l`, `a`
        letters = sum(len(part) == 1 for part in split)  # `Q_u_e_n_n_e_c` is no API word
        if split and letters <= MAX_LETTER_PARTS and all(_known_part(p, known) for p in split):
            self._remember(word)  # a word the site wrote is API vocabulary for every client
            return True
        digest = self._digest(b"w", word)
        seen = self._seen.get(digest)
        if seen is None:
            if len(self._seen) >= MAX_TRACKED_WORDS:
                self._seen.clear()  # counts restart: admitted later, never earlier
            seen = self._seen[digest] = set()
        seen.add(self._digest(b"p", f"{principal[0]}\x00{principal[1]}"))
        if len(seen) < self.min_principals:
            return False
        del self._seen[digest]
        self._remember(word)
        return True

    def _remember(self, word: str) -> None:
        if len(self._admitted) < MAX_ADMITTED_WORDS:
            self._admitted.add(word)

    def _digest(self, domain: bytes, text: str) -> bytes:
        return hashlib.blake2b(domain + text.encode("utf-8", "surrogatepass"), key=self._key,
                               digest_size=16).digest()
