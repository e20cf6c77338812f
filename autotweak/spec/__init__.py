"""Experiment specs: YAML files or Python objects, validated before any compute."""

from autotweak.spec._experiment import Experiment, load_experiment
from autotweak.spec._parts import Budget, Component, Execution, Metric

__all__ = ["Budget", "Component", "Execution", "Experiment", "Metric", "load_experiment"]
