"""Warnings for FHIR routes whose rules would make the resource invalid FHIR.

A FHIR client (fhirclient, HAPI's, Firely's) refuses a resource without its
`resourceType`, or without an element the specification requires (`Observation.status`
and `.code`...), and a value whose format an action broke (a masked `id` or date).
`vigie policy check` prints these as `FILE:LINE: warning: ...` and still exits 0:
the policy is valid, but its clients will fail.

A route is a FHIR route when its path names an R4 resource type (`/fhir/Patient/{id}`,
`/Observation`); its records are the resources (`$` for a read, `$.entry[*].resource`
for a search Bundle, whose envelope the field rules never touch).
"""

from __future__ import annotations

from vigie.policy.model import Action, ClientPolicy, FieldRule, Key, Route, Unlisted

# Elements with a minimum cardinality of 1 in FHIR R4, for the common resource types;
# "x[x]" is a choice element (any `x...` key). Types with none are listed with ().
REQUIRED: dict[str, tuple[str, ...]] = {
    "Patient": (), "Practitioner": (), "PractitionerRole": (), "Organization": (),
    "RelatedPerson": ("patient",), "Person": (), "Location": (), "Group": ("type", "actual"),
    "Observation": ("status", "code"), "Condition": ("subject",),
    "Encounter": ("status", "class"), "EpisodeOfCare": ("status", "patient"),
    "AllergyIntolerance": ("patient",), "Procedure": ("status", "subject"),
    "DiagnosticReport": ("status", "code"), "Immunization": (
        "status", "vaccineCode", "patient", "occurrence[x]"),
    "MedicationRequest": ("status", "intent", "medication[x]", "subject"),
    "MedicationStatement": ("status", "medication[x]", "subject"),
    "MedicationAdministration": ("status", "medication[x]", "subject", "effective[x]"),
    "Medication": (), "Appointment": ("status", "participant"),
    "Coverage": ("status", "beneficiary", "payor"), "Claim": (
        "status", "type", "use", "patient", "created", "provider", "priority", "insurance"),
    "DocumentReference": ("status", "content"), "Consent": (
        "status", "scope", "category"), "CarePlan": ("status", "intent", "subject"),
    "ServiceRequest": ("status", "intent", "subject"), "Composition": (
        "status", "type", "date", "author", "title"), "Bundle": ("type",),
    "Binary": ("contentType",), "Schedule": ("actor",), "Slot": (
        "schedule", "status", "start", "end"), "Specimen": (), "Device": (),
    "FamilyMemberHistory": ("status", "patient", "relationship"),
    "Flag": ("status", "code", "subject"), "Goal": ("lifecycleStatus", "description",
                                                    "subject"),
    "CareTeam": (), "Communication": ("status",), "Task": ("status", "intent"),
    "QuestionnaireResponse": ("status",), "Account": ("status",),
}
# Elements whose value format a mask breaks (FHIR id, date, dateTime, instant).
_FORMATTED = ("id", "birthDate", "deceasedDateTime", "date", "issued", "authoredOn",
              "recordedDate", "onsetDateTime", "effectiveDateTime", "occurrenceDateTime",
              "created", "start", "end")


def resource_type(route: Route) -> str | None:
    """The FHIR resource type a route serves, when its path names one."""
    for segment in reversed(route.segments):
        if segment is not None and segment in REQUIRED:
            return segment
    return None


def fhir_warnings(policy: ClientPolicy) -> list[str]:
    """`FILE:LINE: warning: message` for every FHIR route rule that breaks the resource."""
    where = str(policy.source) if policy.source is not None else policy.client
    out: list[str] = []
    for route in policy.routes:
        kind = resource_type(route)
        if kind is None or route.response is None:
            continue
        for line, message in _route_problems(route, kind):
            out.append(f"{where}:{line}: warning: route {route.name!r}: {message}")
    return out


def _route_problems(route: Route, kind: str) -> list[tuple[int, str]]:
    assert route.response is not None  # noqa: S101 - checked by the caller
    rules = route.response
    top: dict[str, FieldRule] = {}
    for rule in rules.fields:
        first = rule.selector.steps[0] if rule.selector.steps else None
        if isinstance(first, Key) and first.name not in top:
            top[first.name] = rule
    keeps_unlisted = rules.unlisted is Unlisted.KEEP
    problems: list[tuple[int, str]] = []

    def present(name: str) -> bool:
        if name.endswith("[x]"):
            stem = name[:-3]
            matched = [r for key, r in top.items() if key.startswith(stem)]
            return any(r.action is not Action.DROP for r in matched) or (
                keeps_unlisted and not matched)
        rule = top.get(name)
        return rule.action is not Action.DROP if rule is not None else keeps_unlisted

    type_rule = top.get("resourceType")
    if not present("resourceType") or (type_rule is not None
                                       and type_rule.action is not Action.KEEP):
        problems.append((type_rule.line if type_rule else route.line,
                         f"resourceType is not kept: FHIR clients reject a {kind} without it"))
    for name in REQUIRED[kind]:
        if not present(name):
            problems.append((route.line, f"{kind}.{name} is required in FHIR R4 and is "
                                         "dropped: clients reject the resource"))
    for rule in rules.fields:
        name = rule.selector.text
        if rule.action is Action.MASK and name in _FORMATTED:
            problems.append((rule.line, f"masking {name!r} makes it an invalid FHIR "
                                        f"{'id' if name == 'id' else 'date'}"))
        if rule.action is Action.GENERALIZE and name == "id":
            problems.append((rule.line, "generalizing 'id' makes it an invalid FHIR id"))
    return problems
