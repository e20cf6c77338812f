"""The bootstrap script EC2 runs on each worker: install, run ``autotweak worker``, shut down.

The script holds URLs and names only. AWS credentials reach the worker through its
instance profile (boto3's default chain), never through user-data, which anyone allowed
``ec2:DescribeInstanceAttribute`` can read.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from autotweak._locations import redact, secret_query_keys
from autotweak.exceptions import AutotweakError

__all__ = ["ALLOW_LOOPBACK", "Bootstrap", "parse_worker_command", "user_data"]

IMDS = "http://169.254.169.254"
_LOG = "/var/log/autotweak-worker.log"
# Set to 1 for a local simulation (moto, workers run on this machine): loopback stores are then allowed.
ALLOW_LOOPBACK = "AUTOTWEAK_AWS_ALLOW_LOOPBACK"
_TEAM_STORES = (
    "`HOST=<an address the instances reach> bash scripts/team_stores.sh start` starts PostgreSQL and "
    "an MLflow server"
)
_PASSWORD_HELP = {
    "storage": "give workers a ~/.pgpass or IAM database authentication in the AMI",
    "tracking_uri": (
        "give workers MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in their environment "
        "(the AMI, or the install command reading a secret with the instance profile), or let the "
        "tracking server authenticate them another way (a proxy trusting the VPC, or IAM)"
    ),
}


@dataclass(frozen=True)
class Bootstrap:
    """What a worker instance needs to join the study."""

    study: str
    storage: str
    tracking_uri: str | None
    install: str
    wall_time: float | None = None
    session: str | None = None  # the launching session's id: its trials are counted as the launcher's


def check_reachable(storage: str, tracking_uri: str | None) -> None:
    """Refuse stores a remote worker cannot reach, or URLs that would put a password in user-data."""
    if storage.startswith(("sqlite:", "memory")) or "journal" in storage.split(":", 1)[0]:
        raise AutotweakError(
            f"'storage' must be a server URL (PostgreSQL) that EC2 workers can reach for the aws-spot "
            f"executor, got {storage.split('?')[0]!r}; give it with --storage, $AUTOTWEAK_STORAGE or "
            f"'storage' in the spec ({_TEAM_STORES})."
        )
    if tracking_uri is not None and not tracking_uri.startswith(("http://", "https://", "databricks")):
        raise AutotweakError(
            "'tracking_uri' must be an MLflow tracking server URL (http/https) that EC2 workers can "
            f"reach for the aws-spot executor, got {tracking_uri!r}; give it with --tracking-uri, "
            f"$MLFLOW_TRACKING_URI or 'tracking_uri' in the spec ({_TEAM_STORES})."
        )
    urls = {"storage": storage, "tracking_uri": tracking_uri or ""}
    for name, url in urls.items():
        _check_no_password(name, url)
    if os.environ.get(ALLOW_LOOPBACK) != "1":
        for name, url in urls.items():
            _check_not_loopback(name, url)


def _check_no_password(name: str, url: str) -> None:
    """Refuse a password (even an empty one) or a token, before the host or in the query string."""
    secrets = secret_query_keys(url)
    if urlsplit(url).password is not None:
        where = "a password before the host"
    elif secrets:
        where = f"{', '.join(repr(k) for k in secrets)} in its query string"
    else:
        return
    raise AutotweakError(
        f"'{name}' must not hold a password or token for the aws-spot executor (user-data is readable "
        f"with ec2:DescribeInstanceAttribute); {_PASSWORD_HELP[name]} instead, got a URL with {where}: "
        f"{redact(url)!r}."
    )


def _check_not_loopback(name: str, url: str) -> None:
    """Refuse a store on this machine's loopback: an EC2 instance reaching it reaches itself."""
    if not url or (name == "tracking_uri" and not url.startswith(("http://", "https://"))):
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host and "host=" in parts.query:
        return  # libpq's ?host=: not ours to parse
    if host and host != "localhost" and not host.endswith(".localhost"):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return  # a name: the instances' DNS decides
        if not (address.is_loopback or address.is_unspecified):
            return
    shown = repr(host) if host else "none (a local socket)"
    raise AutotweakError(
        f"'{name}' must name a host EC2 workers can reach for the aws-spot executor, got host {shown}: "
        "serve the stores on an address of this machine the instances reach (HOST=<machine address> "
        f"bash scripts/team_stores.sh start) or a server of your VPC; {ALLOW_LOOPBACK}=1 allows "
        "loopback for a local simulation only (moto)."
    )


def user_data(boot: Bootstrap) -> str:
    """The bash script EC2 runs at boot (as root)."""
    # Supervised: a worker process the kernel kills (out of memory) while the machine runs
    # fails its trial as the config's failure; only a machine that goes away preempts it.
    command = ["autotweak", "worker", boot.study, "--storage", boot.storage, "--supervise"]
    if boot.tracking_uri:
        command += ["--tracking-uri", boot.tracking_uri]
    if boot.wall_time is not None:
        command += ["--wall-time", f"{max(boot.wall_time, 1.0):.0f}s"]
    if boot.session is not None:
        command += ["--session", boot.session]
    return "\n".join(
        [
            "#!/bin/bash",
            f"# autotweak spot worker for study {shlex.quote(boot.study)}",
            "set -u",
            f"exec >>{_LOG} 2>&1",
            f"export AUTOTWEAK_IMDS_ENDPOINT={IMDS}",
            "export AUTOTWEAK_HOME=/var/lib/autotweak",
            "mkdir -p /var/lib/autotweak && cd /var/lib/autotweak",
            f"{boot.install} || echo 'autotweak: install failed'",
            shlex.join(command),
            "# whatever happened, stop paying: InstanceInitiatedShutdownBehavior=terminate",
            "shutdown -h now",
            "",
        ]
    )


def parse_worker_command(script: str) -> tuple[list[str], dict[str, str]]:
    """The ``autotweak worker`` command line and the exported variables of a bootstrap script."""
    env: dict[str, str] = {}
    for line in script.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        elif line.startswith("autotweak worker "):
            return shlex.split(line), env
    raise AutotweakError("the bootstrap script holds no 'autotweak worker' command.")
