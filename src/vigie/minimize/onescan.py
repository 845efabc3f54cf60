"""The one-scan pass for a buffered JSON document: field actions first, one NIR scan of the output.

The per-value path (`Job.visit` with `RecordContext.scan`) scans every kept
string and number on its own, in Python, record after record. This pass applies
the same field actions without scanning, serializes the result once, and runs
the NIR scanner once over the serialized bytes. When that scan finds nothing,
the per-value path would have found nothing either, and the two produce the
same output and the same counts: that output is used. Whenever this pass cannot
be sure, it gives up (returns None) and the caller runs the per-value path from
scratch on the untouched document; the pass never changes the parsed document
and counts into a scratch Decision that is merged only on success.

Why a clean scan of the output proves a clean document (every text the
per-value path scans — kept strings, numbers, keys, generalized values, the
envelope — appears in the output, orjson writing no whitespace between tokens):

- Any scanner match, valid key or not, sends the document to the per-value
  path. That path then also decides the keep-whole-NIR exception exactly.
- A match never spans two tokens: quotes, commas, colons and brackets are not
  NIR separators.
- orjson escapes `"`, `\\` and control characters. `\\"`, `\\\\`, `\\n`, `\\r`,
  `\\b`, `\\f` stand for a character that is neither a digit nor a separator, and
  are written with such characters: a match and its boundaries are unchanged.
  A TAB is a separator but is written `\\t`, and `\\u00XX` puts digits next to
  the text: any `\\t` or `\\u` in the output sends the document to the per-value path.
- Numbers: orjson writes integers as `str` does and floats with the digits of
  `repr`, except between 1e-5 and 1e-4 where it writes `0.0000…` instead of
  `…e-05`; any `0.0000` in the output sends the document to the per-value path.
- Depth: what the per-value path would refuse as too deeply nested is found by
  walking containers only (`tree.check_depth`), and sent to the per-value path.
- A withheld record, a transform of a container (which the per-value path does
  in place) and a serialization error go to the per-value path too.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigie.context import Decision
from vigie.errors import InspectionError
from vigie.minimize import nir
from vigie.minimize.bodies import WITHHELD, Job
from vigie.minimize.fields import RecordContext
from vigie.minimize.tree import Fallback

_UNSURE = (b"\\t", b"\\u", b"0.0000")
_SCANNER_SEARCH = nir.SCANNER.search
# A scanner match is 15 digits (or Corsica letters) with separators between them. With
# every byte a separator may use deleted and the other bytes mapped to `d` (a digit or
# A/B/a/b) or `x`, a match becomes at least 15 `d` in a row: a superset, checked in C.
_CANDIDATE_CHARS = bytes(ord("d") if chr(b) in "0123456789ABab" else ord("x") for b in range(256))
_SEPARATOR_BYTES = " \t.-\u00a0\u202f\u2010\u2011".encode()  # nir._SEP, in UTF-8
_CANDIDATE = b"d" * nir.MIN_LENGTH


def minimize_once(document: Any, job: Job) -> bytes | None:
    """The minimized, serialized document, counted into `job.decision`; None when unsure."""
    scratch = Decision(job.decision.request_id, job.decision.method)
    ctx = job.ctx
    trial = Job(scratch, job.identity, job.plan, job.steps,
                RecordContext(scratch, ctx.client, ctx.pseudonymizer, scan=False))
    try:
        result = trial.visit(document)
    except (Fallback, InspectionError):  # the per-value path raises it, counted as it goes
        return None
    if result is WITHHELD:
        return None
    try:
        output = orjson.dumps(result)
    except orjson.JSONEncodeError:
        return None
    for unsure in _UNSURE:
        if unsure in output:
            return None
    # The scanner costs ~20 ns a character of output, the pre-filter about 1 (C loops).
    if _CANDIDATE in output.translate(_CANDIDATE_CHARS, _SEPARATOR_BYTES) \
            and _SCANNER_SEARCH(output.decode()) is not None:
        return None
    _merge(scratch, job.decision)
    return output


def _merge(scratch: Decision, decision: Decision) -> None:
    decision.masked.update(scratch.masked)
    decision.nir_detections.update(scratch.nir_detections)
    decision.fields |= scratch.fields
    decision.patients.extend(scratch.patients)
    decision.records += scratch.records
    decision.withheld += scratch.withheld
