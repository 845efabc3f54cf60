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
in the output, orjson writing no whitespace between tokens and escaping only
`"`, `\\` and control characters):

- Plain forms, and a NIR split over adjacent elements of an array: a cheap
  pre-filter (`_CANDIDATE_CHARS`) maps digits, Corsica letters and every
  non-ASCII byte (a digit of another script, a Unicode separator) to `d` and
  deletes the ASCII separators, the escape bytes and the `"` and `,` between
  elements; any text the per-value path would find a NIR in then becomes at
  least 15 `d` in a row. Any such run sends the document to the per-value path.
  (A float between 1e-5 and 1e-4 is written `0.0000…`: its digits are a run too.)
- Escaped forms (`%31`, `&#49;`, `\\u0031`) and base64: the same detectors
  (`encoded.py`) run over the serialized text with its quotes and commas
  deleted (so adjacent elements are joined, as in the per-value path); it
  holds every string verbatim (an escape is never split by orjson's own
  escaping).
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
from vigie.minimize import encoded, nir
from vigie.minimize.bodies import WITHHELD, Job
from vigie.minimize.tree import Fallback

# Digits, Corsica letters and non-ASCII bytes -> `d`, the rest -> `x`; deleted: the ASCII
# separators (nir._COMMON_SEPARATORS), the bytes of the `\t` and `\uXXXX` escapes, and
# the quotes and commas between the elements of an array.
_CANDIDATE_CHARS = bytes(ord("d") if b >= 0x80 or chr(b) in "0123456789ABab" else ord("x")
                         for b in range(256))
_IGNORED_BYTES = b" \t._/+-" + b"\\tu" + b'",'
_CANDIDATE = b"d" * nir.MIN_LENGTH
_BETWEEN = b'",'


def might_hold_nir(output: bytes) -> bool:
    """False only when the per-value path would find no NIR in any value of `output`.
    About 2 ns a byte of output (C loops); the detectors run only on a candidate."""
    if _CANDIDATE in output.translate(_CANDIDATE_CHARS, _IGNORED_BYTES):
        return True
    # (`b"\\" in` is memchr; a 2-byte needle is 100x slower on this data)
    escaped = b"%" in output or b"&" in output or (b"\\" in output and b"\\u" in output)
    base64 = encoded.has_base64_run(output, _BETWEEN)
    if not escaped and not base64:
        return False
    # Quotes and commas out: adjacent elements joined, as `tree.mask_adjacent` joins them.
    text = output.translate(None, _BETWEEN).decode()
    if escaped and encoded.escaped_spans(text, nir.find):
        return True
    return base64 and bool(encoded.mask_base64(text, nir.find)[1])


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
    if output is None or might_hold_nir(output):
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
