"""Reports: what won, by how much over the base config, what mattered and what it cost."""

from autotweak.engine._share import register_best_model
from autotweak.report._ablation import Ablation, AblationStep, ablation_path, run_ablation
from autotweak.report._compare import compare_markdown, write_comparison
from autotweak.report._html import log_report, write_html_report
from autotweak.report._text import StudyReport, build_report

__all__ = [
    "Ablation",
    "AblationStep",
    "StudyReport",
    "ablation_path",
    "build_report",
    "compare_markdown",
    "log_report",
    "register_best_model",
    "run_ablation",
    "write_comparison",
    "write_html_report",
]
