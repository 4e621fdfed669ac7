"""Objectives: loss families (losses/), constraints on the critic (constraints/) and their composition."""

from ganlab.objectives.objective import Objective, build_objective

__all__ = ["Objective", "build_objective"]
