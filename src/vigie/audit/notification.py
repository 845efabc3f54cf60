"""The output of `vigie audit exposed`: text, CSV or JSON lines, one row per patient.

text:  `42` (or `42  id:clear last_name:pseudonym nir:masked` with `--fields`)
csv:   `patient` (with `--fields`: `patient,clear,masked,pseudonym,generalized`, each
       cell the `;`-joined fields disclosed in that form)
jsonl: `{"patient": "42"}` (with `--fields`: `{"patient": "42", "fields": {"nir":
       ["masked"], ...}}`)
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO

import orjson

FORM_COLUMNS = ("clear", "masked", "pseudonym", "generalized")


def write_exposed(out: TextIO, rows: Iterable[tuple[str, dict[str, set[str]] | None]],
                  style: str) -> int:
    """Write the rows; returns how many patients were written."""
    count = 0
    writer = csv.writer(out, lineterminator="\n") if style == "csv" else None
    header_done = False
    for ref, fields in rows:
        if writer is not None:
            if not header_done:
                writer.writerow(["patient", *FORM_COLUMNS] if fields is not None
                                else ["patient"])
                header_done = True
            writer.writerow([ref] if fields is None else [ref, *(
                ";".join(sorted(name for name, forms in fields.items() if form in forms))
                for form in FORM_COLUMNS)])
        elif style == "jsonl":
            record: dict[str, object] = {"patient": ref}
            if fields is not None:
                record["fields"] = {name: sorted(forms) for name, forms in sorted(fields.items())}
            out.write(orjson.dumps(record).decode() + "\n")
        elif fields is None:
            out.write(ref + "\n")
        else:
            described = " ".join(f"{name}:{'/'.join(sorted(forms))}"
                                 for name, forms in sorted(fields.items()))
            out.write(f"{ref}  {described}\n")
        count += 1
    if writer is not None and not header_done:
        writer.writerow(["patient"])
    return count
