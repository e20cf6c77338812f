"""``autotweak workers list`` and ``workers stop``: the EC2 spot instances of a study's workers."""

from __future__ import annotations

import click

from autotweak.cli._main import _console

__all__ = ["workers"]


@click.group()
def workers() -> None:
    """List or stop the EC2 spot instances that run a study's workers."""


@workers.command("list")
@click.argument("study", required=False)
@click.option("--region", envvar="AWS_REGION", help="AWS region (default: boto3's).")
@click.option("--all", "show_all", is_flag=True, help="Include terminated instances.")
def workers_list(study: str | None, region: str | None, show_all: bool) -> None:
    """List the worker instances of STUDY (or of every study)."""
    from autotweak.aws import workers_of

    found = workers_of(region, study, show_all=show_all)
    if not found:
        _console.line("no worker instances" + (f" for study '{study}'" if study else ""))
    for i in found:
        price = "-" if i.price is None else f"${i.price:.4g}/h"
        launched = i.launch_time.strftime("%Y-%m-%d %H:%M:%S")
        _console.line(f"{i.instance_id}  {i.instance_type}  {i.state}  {launched}  {price}  {i.study}")


@workers.command("stop")
@click.argument("study")
@click.option("--region", envvar="AWS_REGION", help="AWS region (default: boto3's).")
def workers_stop(study: str, region: str | None) -> None:
    """Terminate every worker instance of STUDY and end its launcher; running trials are retried on resume."""
    from autotweak.aws import stop_workers

    stopped = stop_workers(region, study)
    _console.line(f"terminated {len(stopped)} instance(s) of study '{study}'")
