"""Objectives: loss families (losses.py), critic constraints (constraints.py) and their composition."""

from ganlab.objectives.objective import Objective, build_objective

__all__ = ["Objective", "build_objective"]
