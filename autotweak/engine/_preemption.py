"""Spot interruption notices: poll the instance metadata service, tell the running trial.

On EC2 a spot instance gets a two-minute warning at ``spot/instance-action`` (and,
earlier, a rebalance recommendation). A worker polls them (IMDSv2: a session token,
then the metadata) at the endpoint ``AUTOTWEAK_IMDS_ENDPOINT`` names — the spot
launcher sets it to ``http://169.254.169.254``; unset, nothing is polled. Once a notice
is seen, ``trial.should_checkpoint()`` turns true and the trial's next ``report``
stops it as *preempted*: its checkpoint is kept and the trial is queued again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import urllib.error
import urllib.request

__all__ = ["NoticeWatcher", "TrialPreempted", "imds_endpoint", "imds_interval", "machine_name"]

_log = logging.getLogger(__name__)

_PATHS = ("latest/meta-data/spot/instance-action", "latest/meta-data/events/recommendations/rebalance")


class TrialPreempted(Exception):
    """Raised by ``report`` once the machine is about to be taken away."""


def imds_endpoint() -> str | None:
    """The instance-metadata endpoint to poll, from ``AUTOTWEAK_IMDS_ENDPOINT``."""
    return os.environ.get("AUTOTWEAK_IMDS_ENDPOINT") or None


def machine_name() -> str:
    """The machine a failure reason names: its EC2 instance id where one is known, else its host name."""
    instance = NoticeWatcher(imds_endpoint()).instance_id()
    return f"instance {instance}" if instance else f"host {socket.gethostname()}"


def imds_interval() -> float:
    """Seconds between polls, from ``AUTOTWEAK_IMDS_INTERVAL`` (5 by default)."""
    return float(os.environ.get("AUTOTWEAK_IMDS_INTERVAL", "5"))


class NoticeWatcher:
    """Polls the metadata service every ``interval`` seconds in a daemon thread."""

    def __init__(self, endpoint: str | None, interval: float = 5.0) -> None:
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.interval = interval
        self.notice = threading.Event()
        self.reason = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> NoticeWatcher:
        """Start polling (nothing happens without an endpoint)."""
        if self.endpoint and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="autotweak-imds", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set() and not self.notice.is_set():
            self.check()
            self._stop.wait(self.interval)

    def check(self) -> bool:
        """Poll once; return whether a notice has been seen."""
        try:
            token = self._request("latest/api/token", method="PUT", token=None)
            for path in _PATHS:
                body = self._request(path, method="GET", token=token)
                if body is not None:
                    self.reason = f"{path.rsplit('/', 1)[-1]}: {body.strip()[:200]}"
                    _log.warning("interruption notice from the instance metadata service (%s)", self.reason)
                    self.notice.set()
                    break
        except OSError:
            _log.debug("the instance metadata service did not answer", exc_info=True)
        return self.notice.is_set()

    def instance_id(self) -> str | None:
        """The EC2 instance id of the machine, from the metadata service (``None`` without one)."""
        return self.metadata("instance-id").get("instance-id")

    def metadata(self, *names: str) -> dict[str, str]:
        """The metadata ``names`` (``instance-id``, ``instance-type``) it answers; ``{}`` without one."""
        if not self.endpoint:
            return {}
        try:
            token = self._request("latest/api/token", method="PUT", token=None)
            found = {n: self._request(f"latest/meta-data/{n}", method="GET", token=token) for n in names}
        except OSError:
            _log.debug("the instance metadata service did not answer", exc_info=True)
            return {}
        return {name: value.strip() for name, value in found.items() if value and value.strip()}

    def _request(self, path: str, *, method: str, token: str | None) -> str | None:
        headers = {"X-aws-ec2-metadata-token-ttl-seconds": "300"} if token is None else {}
        if token is not None:
            headers["X-aws-ec2-metadata-token"] = token
        request = urllib.request.Request(f"{self.endpoint}/{path}", method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
