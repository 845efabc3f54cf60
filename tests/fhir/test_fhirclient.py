"""A real SMART on FHIR client (`fhirclient`) reads and pages through vigie.

The demo's legacy API writes absolute links from the Host it was reached at, like
HAPI FHIR; before link rewriting, fhirclient followed `next` straight to it with the
bearer token and received other practices' patients unmasked. Here every request the
legacy API receives must come from vigie (it carries `X-Vigie-Client`), every page
holds only the client's practice, and every response parses as FHIR R4 (R4B models of
`fhir.resources`, whose Patient and Bundle are R4's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.patient import Patient as R4Patient
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRServer

from support.legacy import DemoStack

NIR_SYSTEM = "urn:oid:1.2.250.1.213.1.4.8"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoStack]:
    with DemoStack(Path(tmp_path_factory.mktemp("fhirclient")), count=300) as running:
        yield running


class Client:
    """fhirclient's server object with a bearer token; keeps every response it got."""

    def __init__(self, stack: DemoStack, practice: str = "P1") -> None:
        token = stack.issuer.mint("billing", "billing-agent-1", ["patient.read"],
                                  practice_id=practice)
        self.server = FHIRServer(None, base_uri=f"{stack.base_url}/fhir")
        self.server.session.headers["Authorization"] = f"Bearer {token}"
        self.responses: list[requests.Response] = []
        self.server.session.hooks["response"].append(self._keep)

    def _keep(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.responses.append(response)


def reached_only_through_vigie(stack: DemoStack, since: int) -> list[str]:
    seen = stack.upstream.requests[since:]
    assert seen, "the legacy API received nothing"
    return [path for path, _, headers in seen if headers.get("x-vigie-client") != "billing"]


def test_fhirclient_reads_a_patient_through_vigie(stack: DemoStack) -> None:
    client, since = Client(stack), len(stack.upstream.requests)
    patient = Patient.read("31", client.server)
    assert patient.id == "31"
    assert [i.system for i in patient.identifier] == [NIR_SYSTEM]  # billing keeps the NIR only
    assert patient.telecom is None and patient.address is None
    assert reached_only_through_vigie(stack, since) == []
    for response in client.responses:
        R4Patient.model_validate_json(response.content)


def test_fhirclient_pages_a_search_through_vigie_with_its_own_next_handling(
        stack: DemoStack) -> None:
    client, since = Client(stack), len(stack.upstream.requests)
    search = Patient.where(struct={"family": "Ma", "_count": "3"})
    bundles = list(search.perform_iter(client.server))
    assert len(bundles) >= 3  # fhirclient followed `next` links
    urls = [r.url for r in client.responses]
    assert all(url.startswith(f"{stack.base_url}/fhir/Patient?") for url in urls), urls
    assert reached_only_through_vigie(stack, since) == []
    assert len(stack.upstream.requests) - since == len(bundles)  # one upstream call per page
    patients = [e.resource for b in bundles for e in (b.entry or [])]
    assert patients
    assert {p.managingOrganization.identifier.value for p in patients} == {"P1"}
    for bundle in bundles:
        assert bundle.total is None  # the upstream's total counted other practices
        for link in bundle.link or []:
            assert link.url.startswith(f"{stack.base_url}/fhir/Patient?"), link.url
        for entry in bundle.entry or []:
            assert entry.fullUrl == f"{stack.base_url}/fhir/Patient/{entry.resource.id}"
    for response in client.responses:
        assert response.status_code == 200
        Bundle.model_validate_json(response.content)


def test_a_page_link_is_an_ordinary_request_authorized_and_counted(stack: DemoStack) -> None:
    client = Client(stack)
    first = client.server.request_json("Patient?family=Ma&_count=3")
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    outsider = requests.get(following, timeout=10)  # no token: refused by vigie
    assert outsider.status_code == 401
    page = client.server.request_json(following)
    assert page["resourceType"] == "Bundle"
    lines = [orjson.loads(line) for line in stack.audit_path.read_bytes().splitlines()]
    counted = [line for line in lines
               if line.get("route") == "search-patients-fhir" and line.get("status") == 200]
    assert len(counted) >= 2  # the page is audited (and counted by the guard) like any other
