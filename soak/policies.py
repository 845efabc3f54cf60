"""The soak's policies: a clinic that reads its own patients with their free-text notes
(so the NIR scan works on every response), and a research client that pages searches.
`revision` changes a description only, so a reload is real but changes no decision."""

from __future__ import annotations

from pathlib import Path

CLINIC = """\
apiVersion: vigie/v1
client: clinic
description: Soak clinic, revision {revision}
routes:
  - name: read-patient
    methods: [GET]
    path: /patients/{{id}}
    scopes: [patient.read]
    response:
      records: "$"
      fields:
        id: keep
        last_name: keep
        first_name: keep
        birth_date: {{generalize: year}}
        nir: {{mask: last2}}
        notes: keep
        practice_id: keep
      unlisted: drop
      bind:
        practice_id: practice_id
limits:
  requests: 600/minute
  records: 5000/hour
  distinct_patients: 80/day
  enumeration: true
"""

RESEARCH = """\
apiVersion: vigie/v1
client: research
description: Soak research, revision {revision}
routes:
  - name: search-patients
    methods: [GET]
    path: /patients
    scopes: [patient.search]
    query: {{allowed: [last_name, page, page_size], max: {{page_size: 20}}}}
    response:
      records: "$.items[*]"
      fields:
        id: pseudonymize
        birth_date: {{generalize: year}}
        notes: keep
      unlisted: drop
limits:
  requests: 600/minute
  records: 200000/hour
  distinct_patients: 200000/day
  enumeration: false
"""


def write(folder: Path, revision: int) -> None:
    folder.mkdir(exist_ok=True)
    for name, text in (("clinic", CLINIC), ("research", RESEARCH)):
        path = folder / f"{name}.yaml"
        tmp = folder / f"_{name}.tmp"
        tmp.write_text(text.format(revision=revision))
        tmp.replace(path)  # atomic: a replica never reads half a file
