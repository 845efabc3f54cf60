"""What the NIR scanner's disguise detection costs, part by part (issue 12), in CPU time.

`python bench/nir_disguise_bench.py [TREE]` measures, with the `src/` and
`bench/` of TREE (default: this repository, so a checkout of another commit can
be compared): the one-scan check over the serialized 100-record page, the
scanner over 1 KB of NIR-free free text (ASCII, and French with accents and
no-break spaces), and the whole minimizer on the 1 KB record and the page (the
cases of `minimize_bench.py`). CPU time (`process_time`), best of several
batches: the least disturbed by other processes on a shared machine.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

TREE = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
sys.path[:0] = [str(TREE / "src"), str(TREE / "bench")]

import minimize_bench  # noqa: E402

from vigie.minimize import nir, onescan  # noqa: E402

ASCII_TEXT = ("Le patient est venu le 12/03/2024 pour une consultation de suivi. "
              "Tel 06 12 34 56 78. ") * 12
FRENCH_TEXT = ("Le patient est venu le 12/03/2024 à l'hôpital pour un suivi : "
               "tél. 06\u00a012\u00a034\u00a056\u00a078. ") * 12


def best(work: Callable[[], object], per_batch: int, batches: int = 10) -> float:
    """Best CPU microseconds per call over `batches` batches."""
    results = []
    for _ in range(batches):
        start = time.process_time()
        for _ in range(per_batch):
            work()
        results.append((time.process_time() - start) / per_batch * 1e6)
    return min(results)


def main() -> None:
    page = minimize_bench.setup(True)
    output = asyncio.run(minimize_bench.one(*page)).body
    assert isinstance(output, bytes)
    if hasattr(onescan, "might_hold_nir"):
        def check() -> object:
            return onescan.might_hold_nir(output)
    else:  # before issue 12: the candidate pre-filter only
        table, ignored = onescan._CANDIDATE_CHARS, onescan._IGNORED_BYTES  # type: ignore[attr-defined]

        def check() -> object:
            return onescan._CANDIDATE in output.translate(table, ignored)  # type: ignore[attr-defined]
    record = minimize_bench.setup(False)
    print(f"tree: {TREE}")
    print(f"one-scan check, page output ({len(output)} B): {best(check, 300):.1f} us")
    for name, text in (("ASCII", ASCII_TEXT), ("French", FRENCH_TEXT)):
        cost = best(lambda text=text: nir.mask_text(text), 2000)  # type: ignore[misc]
        print(f"scanner, 1 KB {name} free text: {cost:.1f} us")
    print(f"minimizer, 1 KB record: "
          f"{best(lambda: asyncio.run(minimize_bench.one(*record)), 300):.1f} us")
    print(f"minimizer, 100-record page: "
          f"{best(lambda: asyncio.run(minimize_bench.one(*page)), 30):.0f} us")


if __name__ == "__main__":
    main()
