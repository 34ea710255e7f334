"""``python -m profemu``: the command line (see :mod:`profemu.cli`)."""

from __future__ import annotations

from profemu.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
