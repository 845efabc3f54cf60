"""What a paged answer says about its size, where bind withholds records.

An upstream counts every match (`{"items": [...], "total": 52}`, FHIR `Bundle.total`),
including the records of other practices that bind withholds from this page and
from every other page. The proxy cannot count those other pages, so on a route with
`bind` the counts are removed from the envelope of the records (every object on the
way from the body root to the records list) before minimization: `total` and its
usual spellings, and a FHIR Bundle's `last` link (its page number gives the count
away). FHIR `Bundle.total` is optional (0..1), so the Bundle stays valid.
"""

from __future__ import annotations

from typing import Any

from vigie.policy.model import Key, ResponseRule

COUNT_KEYS = ("total", "total_count", "totalCount", "total_results", "totalResults",
              "total_pages", "totalPages")


def withhold_totals(document: Any, rule: ResponseRule) -> None:
    """Removes, in place, the counts that would reveal records `rule.bind` withholds."""
    if not rule.bind:
        return
    node = document
    for step in rule.records.steps:
        if not isinstance(node, dict):
            return
        for key in COUNT_KEYS:
            node.pop(key, None)
        if node.get("resourceType") == "Bundle" and isinstance(node.get("link"), list):
            node["link"] = [link for link in node["link"]
                            if not (isinstance(link, dict) and link.get("relation") == "last")]
        if not isinstance(step, Key):
            return
        node = node.get(step.name)
