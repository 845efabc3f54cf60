"""The HTML register in a real headless browser (Playwright driving Debian's chromium).

The page must stand alone (no request but its own file), show one section per
client, and its matrix must read right: the cell at (field row, client column)
says the form the policies give. No patient value may appear on it.
Without chromium or Playwright the tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vigie.minimize import nir
from vigie.policy.loader import load_policies
from vigie.register import render

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
# Values from the example policy tests: patient data that must never reach the register.
PATIENT_VALUES = ("Martin", "Durand", "Anne", "Bastia", "Pointe", "0611223344", "IPP-556677",
                  "allergic", "1985-05-17", "1990-02-03")


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required under CI: scripts/test-services.sh installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        _missing("chromium is not installed (apt-get install chromium)")
    html = tmp_path_factory.mktemp("register") / "register.html"
    html.write_text(render(load_policies(REPO / "policies"), "html", title_source="policies"),
                    encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            tab = browser.new_page()
            requested: list[str] = []
            tab.on("request", lambda request: requested.append(request.url))
            tab.goto(html.as_uri())
            tab.requested = requested
            yield tab
        finally:
            browser.close()


def test_the_page_loads_nothing_but_itself(page: Any) -> None:
    assert len(page.requested) == 1 and page.requested[0].startswith("file://")
    assert page.locator("script, link, img, iframe, object, embed").count() == 0
    assert page.title() == "Register of disclosures — who sees what"


def test_one_section_per_client_with_its_purpose_and_legal_basis(page: Any) -> None:
    sections = page.locator("section.client")
    ids = [sections.nth(i).get_attribute("id") for i in range(sections.count())]
    assert ids == ["client-billing", "client-gp-frontdesk", "client-lab-results",
                   "client-research-export"]
    lab = page.locator("#client-lab-results").inner_text()
    assert "lab-results: Sending laboratory results to the right patient" in lab
    assert "décret-cadre NIR: Referencing health data with the INS" in lab
    assert "GDPR art. 9(2)(h)" in lab
    assert "/fhir/Patient/{id}" in lab
    assert "approved by the data protection officer" in page.locator("#approval").inner_text()


def _matrix(page: Any) -> dict[tuple[str, str], str]:
    """(field, client) -> the cell's text, read through the table's own header cells."""
    clients = page.locator("#matrix thead th").all_inner_texts()
    cells: dict[tuple[str, str], str] = {}
    rows = page.locator("#matrix tbody tr")
    for i in range(rows.count()):
        row = rows.nth(i)
        name = row.locator("th[scope=row]").inner_text()
        for column, text in enumerate(row.locator("td").all_inner_texts(), start=1):
            cells[(name, clients[column])] = text
    return cells


def test_the_matrix_reads_correctly(page: Any) -> None:
    cells = _matrix(page)
    ins = "identifier[?system=urn:oid:1.2.250.1.213.1.4.8].value"
    assert cells[(ins, "billing")] == "clear"
    assert cells[(ins, "gp-frontdesk")] == "pseudonym"
    assert cells[(ins, "lab-results")] == "clear"
    assert cells[(ins, "research-export")] == "never"
    assert cells[("nir", "gp-frontdesk")] == "masked"
    assert cells[("birth_date", "research-export")] == "generalized"
    assert cells[("last_name", "billing")] == "never"
    assert cells[(ins, "category")] == "NIR / INS"
    # every cell of a client column is a form, coloured by it
    forms = page.locator("#matrix tbody td[data-form]")
    assert forms.count() == len([k for k in cells if k[1] != "category"])
    assert set(forms.all_inner_texts()) <= {"clear", "pseudonym", "masked", "generalized",
                                             "unfiltered", "never"}


def test_no_patient_value_appears(page: Any) -> None:
    text = page.locator("body").inner_text()
    assert not nir.contains(text)
    for value in PATIENT_VALUES:
        assert value not in text
    assert not re.search(r"\b\d{13,}\b", text)
