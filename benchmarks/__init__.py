"""profemu's benchmark suite: accuracy, speed and scaling; writes ``BENCHMARKS.md``.

Run it from the repository root::

    python -m benchmarks            # full suite
    python -m benchmarks --quick    # smaller sizes
    python -m benchmarks --only speed,scaling

Every module ``benchmarks/<name>.py`` provides ``run(*, quick: bool, out_dir: Path)
-> dict`` (JSON-safe results; figures as PNG in ``out_dir / "figures"``) and
``markdown(results: dict) -> str`` (its section of BENCHMARKS.md).
"""

from __future__ import annotations

__all__: list[str] = []
