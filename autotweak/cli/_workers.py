"""``autotweak workers list`` and ``workers stop``: the EC2 spot instances of a study's workers."""

from __future__ import annotations

import logging
import os
from typing import Any

import click

from autotweak._money import usd_per_hour
from autotweak.cli._main import _console
from autotweak.cli._stores import open_storage, storage_option

__all__ = ["workers"]

_log = logging.getLogger(__name__)
_REGION_HELP = "AWS region (default: the study's 'execution.aws.region', else $AWS_REGION, else boto3's)."


@click.group()
def workers() -> None:
    """List or stop the EC2 spot instances that run a study's workers."""


@workers.command("list")
@click.argument("study", required=False)
@click.option("--region", help=_REGION_HELP)
@click.option("--all", "show_all", is_flag=True, help="Include terminated instances.")
@storage_option
def workers_list(study: str | None, region: str | None, show_all: bool, storage: str | None) -> None:
    """List the worker instances of STUDY (or of every study)."""
    from autotweak.aws import workers_of

    region, searched = _region(study, region, storage)
    found = workers_of(region, study, show_all=show_all)
    if not found:
        gone = 0 if show_all else len(workers_of(region, study, show_all=True))  # terminated ones
        command = "autotweak workers list" + (f" {study}" if study else "") + " --all"
        _console.line(
            "no worker instances"
            + (f" for study '{study}'" if study else "")
            + f" in {searched}"
            + (f"; {gone} terminated (`{command}` lists them)" if gone else "")
        )
        _warn_unknown(study, storage)
        return
    _console.line(f"worker instances in {searched}:")
    for i in found:
        price = "-" if i.price is None else usd_per_hour(i.price)
        launched = i.launch_time.strftime("%Y-%m-%d %H:%M:%S")
        _console.line(f"{i.instance_id}  {i.instance_type}  {i.state}  {launched}  {price}  {i.study}")


@workers.command("stop")
@click.argument("study")
@click.option("--region", help=_REGION_HELP)
@storage_option
def workers_stop(study: str, region: str | None, storage: str | None) -> None:
    """Terminate every worker instance of STUDY and end its launcher; running trials are retried on resume."""
    from autotweak.aws import stop_workers

    region, searched = _region(study, region, storage)
    stopped = stop_workers(region, study)
    if stopped:
        _console.line(f"terminated {len(stopped)} instance(s) of study '{study}' in {searched}")
        return
    _console.line(f"no running instance of study '{study}' in {searched}: nothing to terminate")
    _warn_unknown(study, storage)


def _warn_unknown(study: str | None, storage: str | None) -> None:
    """Warn when a storage answers without ``study``: a misspelled name finds no instance either."""
    from autotweak.engine._study import load_study
    from autotweak.exceptions import StudyNotFoundError

    if study is None or storage is None:  # no storage given (a spot study's is never the default one)
        return
    try:
        load_study(study, open_storage(storage, study))
    except StudyNotFoundError as exc:
        _console.warn(str(exc))
    except Exception as exc:  # a storage that does not answer: the instances were looked for all the same
        _log.debug("could not look for study '%s' in the storage: %s", study, exc)


def _region(study: str | None, option: str | None, storage: str | None) -> tuple[str | None, str]:
    """The region to search, and words saying which and why: --region, the study's, $AWS_REGION, boto3's."""
    from autotweak.aws import region_name

    if option:
        return option, f"region {option} (--region)"
    recorded = _study_region(study, storage) if study else None
    if recorded:
        return recorded, f"region {recorded} (the study's 'execution.aws.region')"
    region = os.environ.get("AWS_REGION") or None
    origin = "$AWS_REGION" if region else "boto3's default region"
    return region, f"region {region_name(region)} ({origin}; pass --region to search another)"


def _study_region(study: str, storage: str | None) -> str | None:
    """``execution.aws.region`` in the spec the study keeps, if the study is in the storage."""
    from autotweak.engine._study import ATTR

    try:
        storage_ = open_storage(storage, study)
        study_id = storage_.get_study_id_from_name(study)
        spec: Any = storage_.get_study_user_attrs(study_id).get(ATTR.SPEC) or {}
        region = ((spec.get("execution") or {}).get("aws") or {}).get("region")
    except Exception as exc:  # no such study here, or no storage: the instances are still listed
        _log.debug("no region recorded for study '%s': %s", study, exc)
        return None
    return region if isinstance(region, str) else None
