"""A detached watchdog: when the launcher dies, terminate the instances it launched.

The launcher starts it with the read end of a pipe whose write end only the launcher
holds. However the launcher ends — normally, Ctrl-C, ``kill -9``, an OOM kill — the
kernel closes that end, the watchdog's read returns, and it terminates every instance
tagged with the launcher's id. No polling of pids (which get reused), no cron job.

Run as ``python -m autotweak.aws._watchdog --fd N --launcher ID [--region R]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from autotweak.aws._ec2 import delete_templates, ec2_client, find_instances, find_templates, terminate

__all__ = ["Watchdog", "main"]

_log = logging.getLogger("autotweak.aws.watchdog")


class Watchdog:
    """The launcher's end of the watchdog: keep it open while the study runs."""

    def __init__(self, launcher: str, study: str, region: str | None, log_path: Path) -> None:
        read, self._write = os.pipe()
        command = [sys.executable, "-m", "autotweak.aws._watchdog", "--fd", str(read), "--launcher", launcher]
        command += ["--study", study] + (["--region", region] if region else [])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            pass_fds=(read,),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C or a kill of the launcher's group spares it
        )
        os.close(read)

    def close(self) -> None:
        """The launcher is done: the watchdog sweeps once more and exits."""
        if self._write >= 0:
            os.close(self._write)
            self._write = -1
        self._log.close()


def sweep(launcher: str, study: str, region: str | None, *, settle: float = 5.0) -> int:
    """Terminate the launcher's instances, twice: a launch in flight may land after the first.

    The launch template of a fleet call it was killed in goes too (the next session of the
    study deletes it where the watchdog could not, and bills the instances).
    """
    ec2 = ec2_client(region)
    done = 0
    for attempt in range(2):
        try:
            done += len(terminate(ec2, find_instances(ec2, study, launcher)))
        except Exception as exc:
            _log.error("could not terminate the instances of launcher %s: %s", launcher, exc)
        if attempt == 0:
            time.sleep(settle)
    try:
        delete_templates(ec2, [t for t in find_templates(ec2, study) if t.launcher == launcher])
    except Exception as exc:
        _log.error("could not delete the launch templates of launcher %s: %s", launcher, exc)
    return done


def main(argv: list[str] | None = None) -> None:
    """Wait for the launcher's pipe to close, then terminate its instances."""
    parser = argparse.ArgumentParser(prog="autotweak-aws-watchdog")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--launcher", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--region")
    args = parser.parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s watchdog %(levelname)s %(message)s"))
    logging.getLogger("autotweak").addHandler(handler)
    logging.getLogger("autotweak").setLevel(logging.INFO)
    with os.fdopen(args.fd, "rb") as pipe:
        while pipe.read(4096):
            pass  # the launcher never writes: read() returns b"" once it is gone
    count = sweep(args.launcher, args.study, args.region)
    _log.info("launcher %s gone: %d instance(s) terminated", args.launcher, count)


if __name__ == "__main__":
    main()
