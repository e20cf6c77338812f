"""The cloud machines a study's workers ran on: each records itself once, on the study.

A spot worker runs its launcher's session (its trials name that session), on an EC2
instance its launcher chose among ``execution.aws.instance_types``. As it starts it asks the
instance metadata service (``AUTOTWEAK_IMDS_ENDPOINT``) for its instance id and type and
keeps them, with its host and its session, as one study attr of its own
(``autotweak.machine.<instance id>``): one write per machine, none per trial. The report
then groups a session's trials by the type of its machines (see :func:`trial_types`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from autotweak.engine._preemption import NoticeWatcher, imds_endpoint
from autotweak.engine._study import ATTR
from autotweak.engine._unreachable import retrying

__all__ = ["MACHINE", "Machine", "machines_of", "record_machine", "trial_types"]

MACHINE = "autotweak.machine."  # the study's attr of one machine: this, then its instance id


@dataclass(frozen=True)
class Machine:
    """One cloud machine that ran trials of a session."""

    instance_id: str
    instance_type: str
    host: str
    session: str


def record_machine(
    study: optuna.Study, session_id: str, *, store: BaseStorage | str | None = None
) -> Machine | None:
    """Keep this machine on the study, for session ``session_id``; ``None``: no metadata service answers.

    Written through a storage outage, as the session's own record is; a worker that starts
    again on the machine writes the same record.
    """
    found = NoticeWatcher(imds_endpoint()).metadata("instance-id", "instance-type")
    if "instance-id" not in found or "instance-type" not in found:
        return None
    machine = Machine(found["instance-id"], found["instance-type"], socket.gethostname(), session_id)
    record = {"instance_type": machine.instance_type, "host": machine.host, "session": session_id}
    key = MACHINE + machine.instance_id
    retrying(lambda: study.set_user_attr(key, record), "recording the machine", store=store)
    return machine


def machines_of(attrs: Mapping[str, Any]) -> list[Machine]:
    """The machines recorded in a study's user attrs (none in a study from before they were).

    Example:
        >>> record = {"instance_type": "g4dn.xlarge", "host": "ip-10-0-0-7", "session": "ab12"}
        >>> machines_of({"autotweak.machine.i-0abc": record})
        [Machine(instance_id='i-0abc', instance_type='g4dn.xlarge', host='ip-10-0-0-7', session='ab12')]
    """
    return [
        Machine(
            instance_id=key[len(MACHINE) :],
            instance_type=str(value.get("instance_type", "")),
            host=str(value.get("host", "")),
            session=str(value.get("session", "")),
        )
        for key, value in attrs.items()
        if key.startswith(MACHINE) and isinstance(value, Mapping) and value.get("instance_type")
    ]


def trial_types(
    attrs: Mapping[str, Any], trials: Iterable[FrozenTrial], hosts: Mapping[int, str] | None = None
) -> dict[int, str]:
    """The instance type each trial ran on, where its session's machines tell it.

    All of a session's machines of one type: that type, for each of its trials. Of several
    types: the type of the machine on the trial's host (``hosts``, by trial number), where
    that host's machines of the session are of one type.
    """
    by_session: dict[str, set[str]] = {}
    by_host: dict[tuple[str, str], set[str]] = {}
    for machine in machines_of(attrs):
        by_session.setdefault(machine.session, set()).add(machine.instance_type)
        by_host.setdefault((machine.session, machine.host), set()).add(machine.instance_type)
    hosts = hosts or {}
    found: dict[int, str] = {}
    for trial in trials:
        session = str(trial.user_attrs.get(ATTR.SESSION))
        types = by_session.get(session, set())
        if len(types) > 1 and trial.number in hosts:
            types = by_host.get((session, hosts[trial.number]), set())
        if len(types) == 1:
            found[trial.number] = next(iter(types))
    return found
