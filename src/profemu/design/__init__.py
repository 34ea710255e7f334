"""The design of the next simulations, and which parameters the profiles respond to.

* :mod:`profemu.design.space` — the emulator's design space and candidate points;
* :mod:`profemu.design.selection` — :func:`suggest`: a diverse batch of points where the
  ensemble's epistemic variance is largest;
* :mod:`profemu.design.derivatives` — :func:`sensitivity`: d log10 profile / d parameter;
* :mod:`profemu.design.tables`, :mod:`profemu.design.figures` — files and figures.
"""

from profemu.design.derivatives import Sensitivity, sensitivity, top_parameters
from profemu.design.figures import sensitivity_figure, suggestion_figure
from profemu.design.selection import Suggestion, greedy_batch, suggest
from profemu.design.space import DesignSpace, candidate_points, design_space
from profemu.design.tables import (
    DesignTable,
    check_new_file,
    like_columns,
    read_design_table,
    write_like_table,
    write_suggestion_csv,
)

__all__ = [
    "DesignSpace",
    "DesignTable",
    "Sensitivity",
    "Suggestion",
    "candidate_points",
    "check_new_file",
    "design_space",
    "greedy_batch",
    "like_columns",
    "read_design_table",
    "sensitivity",
    "sensitivity_figure",
    "suggest",
    "suggestion_figure",
    "top_parameters",
    "write_like_table",
    "write_suggestion_csv",
]
