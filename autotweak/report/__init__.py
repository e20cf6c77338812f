"""Reports: what won, by how much over the base config, and what it cost."""

from autotweak.report._text import StudyReport, build_report

__all__ = ["StudyReport", "build_report"]
