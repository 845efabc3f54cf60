"""The one-scan pass for a buffered JSON document: field actions first, one NIR scan of the output.

The per-value path (`Job.visit` with `RecordContext.scan`) scans every kept
string and number on its own, in Python, record after record. This pass applies
the same field actions without scanning, serializes the result once, and runs
the NIR scanner once over the serialized bytes. When that scan finds nothing,
the per-value path would have found nothing either, and the two produce the
same output and the same counts: that output is used. Whenever this pass cannot
be sure, it gives up (returns None) and the caller runs the per-value path from
scratch on the untouched document; the pass never changes the parsed document,
and the counts it made are taken back from the Decision.

Why a clean output proves a clean document (every text the per-value path
scans — kept strings, numbers, keys, generalized values, the envelope — appears
in the output, orjson writing no whitespace between tokens):

- A cheap pre-filter first (`_CANDIDATE_CHARS`): no run of 15 digits once
  separators and escape bytes are ignored means no NIR anywhere. Only when it
  finds a run are the checks below made; any of them sends the document to the
  per-value path, which then also decides the keep-whole-NIR exception exactly.
- Any scanner match, valid key or not.
- A match never spans two tokens: quotes, commas, colons and brackets are not
  NIR separators.
- orjson escapes `"`, `\\` and control characters. `\\"`, `\\\\`, `\\n`, `\\r`,
  `\\b`, `\\f` stand for a character that is neither a digit nor a separator, and
  are written with such characters: a match and its boundaries are unchanged.
  A TAB is a separator but is written `\\t`, and `\\u00XX` puts digits next to
  the text: any `\\t` or `\\u` in the output.
- Numbers: orjson writes integers as `str` does and floats with the digits of
  `repr`, except between 1e-5 and 1e-4 where it writes `0.0000…` instead of
  `…e-05`: any `0.0000` in the output.
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
from vigie.minimize.tree import Fallback

_UNSURE = (b"\\t", b"\\u", b"0.0000")
_SCANNER_SEARCH = nir.SCANNER.search
# A scanner match is 15 digits (or Corsica letters) with separators between them. With
# every byte a separator may use deleted, and the bytes of a `\t` or `\uXXXX` escape
# too, and the other bytes mapped to `d` (a digit or A/B/a/b) or `x`, any text the
# per-value path would find a NIR in becomes at least 15 `d` in a row: a superset.
# (A float between 1e-5 and 1e-4 holding one is written `0.0000` and its 15+ digits.)
_CANDIDATE_CHARS = bytes(ord("d") if chr(b) in "0123456789ABab" else ord("x") for b in range(256))
_IGNORED_BYTES = " \t.-\u00a0\u202f\u2010\u2011".encode() + b"\\tu"  # nir._SEP + escapes
_CANDIDATE = b"d" * nir.MIN_LENGTH


def minimize_once(document: Any, job: Job) -> bytes | None:
    """The minimized, serialized document, counted into `job.decision`; None when unsure
    (the decision is then as it was before)."""
    decision = job.decision
    before = _counts(decision)
    job.ctx.scan = False
    result: Any = WITHHELD
    try:
        result = job.visit(document)
    except (Fallback, InspectionError):  # the per-value path raises it, counted as it goes
        result = WITHHELD
    finally:
        job.ctx.scan = True
    output = None
    if result is not WITHHELD:
        try:
            output = orjson.dumps(result)
        except orjson.JSONEncodeError:
            output = None
    # The pre-filter costs about 1 ns a byte of output (C loops); the rest runs only when
    # it finds a candidate run.
    if output is None or _CANDIDATE in output.translate(_CANDIDATE_CHARS, _IGNORED_BYTES) and (
            any(unsure in output for unsure in _UNSURE)
            or _SCANNER_SEARCH(output.decode()) is not None):
        _restore(decision, before)
        return None
    return output


_Counts = tuple[dict[str, int], dict[str, int], set[str], int, int, int]


def _counts(decision: Decision) -> _Counts:
    return (dict(decision.masked), dict(decision.nir_detections), set(decision.fields),
            len(decision.patients), decision.records, decision.withheld)


def _restore(decision: Decision, counts: _Counts) -> None:
    masked, detections, fields, patients, records, withheld = counts
    decision.masked.clear()
    decision.masked.update(masked)
    decision.nir_detections.clear()
    decision.nir_detections.update(detections)
    decision.fields.clear()
    decision.fields.update(fields)
    del decision.patients[patients:]
    decision.records = records
    decision.withheld = withheld
