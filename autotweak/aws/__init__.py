"""AWS spot workers: launch ``autotweak worker`` on EC2 spot instances, list and stop them.

Needs the ``aws`` extra (boto3), imported only when an EC2 call is made.
"""

from autotweak.aws._ec2 import Instance, find_instances, region_name, stop_workers, workers_of
from autotweak.aws._errors import AwsAccessError, AwsError
from autotweak.aws._executor import SpotExecutor
from autotweak.aws._userdata import ALLOW_LOOPBACK, parse_worker_command, user_data

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
