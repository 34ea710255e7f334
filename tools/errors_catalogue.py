"""Write the error catalogue of docs/errors.md from the running code.

Every case of ``tests/reliability`` (``CASES`` of ``test_bad_inputs.py``, ``SAFETY_CASES``
of ``test_run_safety.py``) is performed through the Python API and the command line on a
tiny trained run, and the real one-line messages are written into the table between the
``<!-- catalogue:start -->`` and ``<!-- catalogue:end -->`` markers of docs/errors.md
(paths, pids, host names and times replaced by placeholders). Nothing in the table is
typed by hand; ``tests/reliability/test_run_safety.py`` fails when the file is stale.

Usage (from the repository root)::

    PYTHONPATH=src python tools/errors_catalogue.py          # rewrite docs/errors.md
    PYTHONPATH=src python tools/errors_catalogue.py --check  # exit 1 when it is stale
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    """Regenerate (or ``--check``) the catalogue; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only compare; exit 1 when docs/errors.md is stale.")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(ROOT), str(ROOT / "src")]
    from tests.reliability import tiny_run
    from tests.reliability.catalogue import (
        DOC,
        Ctx,
        all_cases,
        doc_table,
        render,
        run_case,
        with_table,
    )

    with tempfile.TemporaryDirectory(prefix="profemu-errors-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = Path(tmp) / "cases"
        folder.mkdir()
        ctx = Ctx(tiny_run(Path(tmp) / "tiny_run"), folder)
        table = render([run_case(case, ctx) for case in all_cases()])
    if args.check:
        if doc_table() != table:
            print(f"{DOC} is stale; run: PYTHONPATH=src python tools/errors_catalogue.py", file=sys.stderr)
            return 1
        print(f"{DOC} is up to date ({table.count(chr(10)) - 2} cases)")
        return 0
    DOC.write_text(with_table(table))
    print(f"wrote {DOC} ({table.count(chr(10)) - 2} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
