"""Whose a loopback port is: a test server's readiness is its own process's socket, not any answer.

:func:`~autotweak.testing.services.free_port` closes the port it found before the server
binds it, and a server started again reuses its port: another process may take it
meanwhile. Its answer on the port would pass for the server's while the server fails to
bind. Linux's ``/proc`` says which process holds the socket listening on a port.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

__all__ = ["group_listens", "group_members", "port_taken"]

_LISTEN = "0A"  # a socket's state in /proc/net/tcp


def port_taken(port: int, wait: float = 5.0) -> bool:
    """Whether a socket still listens on loopback ``port`` after up to ``wait`` seconds.

    A server killed a moment ago may leave its port to its workers until they end too; a
    socket in TIME_WAIT does not count, as for a server, which binds with ``SO_REUSEADDR``.
    """
    deadline = time.monotonic() + wait
    while _listened(port):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def _listened(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def group_listens(group: int, port: int) -> bool:
    """Whether a process of process group ``group`` holds the socket listening on TCP ``port``.

    Where ``/proc`` does not say (not Linux), ``True``: the port's answer is then taken as is.
    """
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not tables[0].exists():
        return True
    sockets = {f"socket:[{inode}]" for table in tables for inode in _listening(table, port)}
    return bool(sockets) and any(_holds(pid, sockets) for pid in group_members(group))


def _listening(table: Path, port: int) -> list[str]:
    """The inodes of the sockets of ``table`` (``/proc/net/tcp``) that listen on ``port``."""
    try:
        rows = table.read_text().splitlines()[1:]
    except OSError:
        return []
    found = []
    for row in rows:
        fields = row.split()  # sl local_address rem_address st ... uid timeout inode
        if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.append(fields[9])
    return found


def group_members(group: int) -> list[int]:
    """The live processes of process group ``group`` (zombies are not: they wait to be reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _holds(pid: int, sockets: set[str]) -> bool:
    """Whether process ``pid`` has one of ``sockets`` open."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        entries = list(fds.iterdir())
    except OSError:  # ended meanwhile, or not ours to read
        return False
    for entry in entries:
        try:
            if str(entry.readlink()) in sockets:
                return True
        except OSError:
            continue
    return False
