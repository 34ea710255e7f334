"""Compiled programs kept between runs of the command line (JAX's persistent compilation cache).

A training run spends a few seconds compiling its epoch, the same program for every run of
the same set-up (configuration, network and row counts): a sweep, a retraining, the member
jobs of a cluster run. The ``profemu`` console script keeps the compiled programs in a folder,
so a later run loads them instead (``profemu train`` on 1,600 CAMELS TNG rows, from process
start to exit: 7.3 s instead of 9.9 s; BENCHMARKS.md, "Training time").

* The folder: ``$PROFEMU_COMPILATION_CACHE`` if it names one, else
  ``$XDG_CACHE_HOME/profemu/jax`` (``~/.cache/profemu/jax``); at most
  :data:`MAX_BYTES`, the least recently used programs dropped first (JAX's own cache, with
  a file lock for jobs that share it).
* ``PROFEMU_COMPILATION_CACHE=off`` turns it off; a ``JAX_COMPILATION_CACHE_DIR`` of the
  user's own is left as it is.

It is set up by :func:`profemu.cli.main` only, through JAX's environment variables before
JAX is imported: the library never changes JAX's configuration.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

__all__ = ["MAX_BYTES", "OFF", "cache_environment", "use_compilation_cache"]

#: The cache's largest size [bytes].
MAX_BYTES = 512 * 2**20
#: Values of ``PROFEMU_COMPILATION_CACHE`` that turn the cache off.
OFF = frozenset({"off", "0", "false", "no", "none"})


def default_folder(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/profemu/jax`` (``~/.cache/profemu/jax`` without it)."""
    base = environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "profemu" / "jax"


def cache_environment(environ: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The JAX environment variables that keep compiled programs, and a sentence saying so.

    Args:
        environ: The process environment (``PROFEMU_COMPILATION_CACHE``,
            ``JAX_COMPILATION_CACHE_DIR``, ``XDG_CACHE_HOME``).

    Returns:
        ``(variables to set, note)``; no variables where the cache is off, already the
        user's, or its folder cannot be created (the note says which).
    """
    setting = environ.get("PROFEMU_COMPILATION_CACHE", "").strip()
    if setting.lower() in OFF:
        return {}, "compiled programs are not kept between runs (PROFEMU_COMPILATION_CACHE=off)"
    if environ.get("JAX_COMPILATION_CACHE_DIR", "").strip():
        return {}, f"compiled programs are kept in {environ['JAX_COMPILATION_CACHE_DIR']} (JAX_COMPILATION_CACHE_DIR)"
    # absolute: cluster jobs inherit the variable and start in other folders
    folder = (Path(setting).expanduser() if setting else default_folder(environ)).absolute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        writable = os.access(folder, os.W_OK)
    except OSError as exc:
        return {}, f"compiled programs are not kept between runs ({folder}: {exc.strerror or exc})"
    if not writable:
        return {}, f"compiled programs are not kept between runs ({folder} is not writable)"
    variables = {"JAX_COMPILATION_CACHE_DIR": str(folder), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    if importlib.util.find_spec("filelock") is not None:  # JAX's size limit locks the folder with it
        variables["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(MAX_BYTES)
    return (variables, f"compiled programs are kept in {folder} for the next run (PROFEMU_COMPILATION_CACHE=off "
                       "turns this off)")


def use_compilation_cache(environ: MutableMapping[str, str] | None = None) -> str:
    """Set the variables of :func:`cache_environment` in ``environ`` (default ``os.environ``);
    call before JAX is imported. Returns the note."""
    env = os.environ if environ is None else environ
    variables, note = cache_environment(env)
    env.update(variables)
    return note
