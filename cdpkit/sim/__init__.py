"""Capacity simulation: a Pipeline's specs run on the runtime, results as DataFrames."""

from .results import Results
from .simulate import simulate
from .sweep import choose, sweep
from .tune import Tuning, tune

__all__ = ["simulate", "sweep", "choose", "tune", "Tuning", "Results"]
