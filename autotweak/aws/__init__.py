"""AWS spot workers: launch ``autotweak worker`` on EC2 spot instances, list and stop them.

Needs the ``aws`` extra (boto3), imported only when an EC2 call is made. The public names
are imported on first use: ``workers list`` and ``workers stop`` reach EC2 without the
launcher's imports (the engine's worker, MLflow).
"""

from typing import TYPE_CHECKING

from autotweak._imports import lazy_exports

if TYPE_CHECKING:
    from autotweak.aws._ec2 import Instance, find_instances, region_name, stop_workers, workers_of
    from autotweak.aws._errors import AwsAccessError, AwsError
    from autotweak.aws._executor import SpotExecutor
    from autotweak.aws._userdata import ALLOW_LOOPBACK, parse_worker_command, user_data
else:  # a type checker reads the imports above, and says so of a misspelt name
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "autotweak.aws._ec2": ("Instance", "find_instances", "region_name", "stop_workers", "workers_of"),
            "autotweak.aws._errors": ("AwsAccessError", "AwsError"),
            "autotweak.aws._executor": ("SpotExecutor",),
            "autotweak.aws._userdata": ("ALLOW_LOOPBACK", "parse_worker_command", "user_data"),
        },
    )

__all__ = [
    "ALLOW_LOOPBACK",
    "AwsAccessError",
    "AwsError",
    "Instance",
    "SpotExecutor",
    "find_instances",
    "parse_worker_command",
    "region_name",
    "stop_workers",
    "user_data",
    "workers_of",
]
