"""Physics shared by every layer: constants, flat ΛCDM background and halo formulas.

One copy of each formula, as pure functions of numpy or ``jax.numpy`` arrays (``xp``), so
the data layer, the mock universe and the observables use the same numbers.
"""
