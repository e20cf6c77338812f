"""Conformance suites: every implementation of a seam passes the same tests.

Import them in a test module and subclass; see each suite's docstring.
"""

from autotweak.testing.executors import ExecutorConformance, make_conformance_experiment
from autotweak.testing.trackers import TrackerConformance

__all__ = ["ExecutorConformance", "TrackerConformance", "make_conformance_experiment"]
