"""Capacity simulation: a Pipeline's specs run on the runtime, results as DataFrames."""

from .results import Results
from .simulate import simulate

__all__ = ["simulate", "Results"]
