"""Reports: what won, by how much over the base config, what mattered and what it cost."""

from autotweak.report._compare import compare_markdown, write_comparison
from autotweak.report._html import write_html_report
from autotweak.report._text import StudyReport, build_report

__all__ = ["StudyReport", "build_report", "compare_markdown", "write_comparison", "write_html_report"]
