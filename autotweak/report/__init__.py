"""Reports: what won, by how much over the base config, what mattered and what it cost.

The public names are imported on first use: the text report is built without Matplotlib
(the HTML pages' figures) and without the model registry's MLflow imports.
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

if TYPE_CHECKING:
    from autotweak.engine._share import register_best_model
    from autotweak.report._ablation import Ablation, AblationStep, ablation_path, run_ablation
    from autotweak.report._compare import compare_markdown, write_comparison
    from autotweak.report._html import log_report, write_html_report
    from autotweak.report._text import StudyReport, build_report
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.engine._share": ("register_best_model",),
            "autotweak.report._ablation": ("Ablation", "AblationStep", "ablation_path", "run_ablation"),
            "autotweak.report._compare": ("compare_markdown", "write_comparison"),
            "autotweak.report._html": ("log_report", "write_html_report"),
            "autotweak.report._text": ("StudyReport", "build_report"),
        },
    )

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
