"""The ``profemu`` command line: parse the options, make one library call, print."""

from profemu.cli.commands import app, main

__all__ = ["app", "main"]
