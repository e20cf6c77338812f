"""A pass-through proxy in front of moto that holds EC2's answer to a launch: instances exist, unsaid.

The launcher's ``RunInstances`` (or ``CreateFleet``) reaches moto, which creates the
instances; the answer that names them is held until the test releases it. A Ctrl-C sent
meanwhile lands where it costs most: EC2 has launched, and the launcher does not know the ids.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_LAUNCHES = (b"Action=RunInstances", b"Action=CreateFleet")


class HeldLaunch:
    """Forwards every request to ``upstream``; the first launch's answer waits for :meth:`close`.

    ``actions`` say which calls are the launch (a fleet's ``CreateLaunchTemplate``, to hold
    the launcher between its template and the fleet call).

    Attributes:
        url: Where boto3 is pointed (``AWS_ENDPOINT_URL``).
        launched: Set once moto has answered the launch (its answer held).
        instance_ids: The ids in that answer.
    """

    def __init__(self, upstream: str, actions: tuple[bytes, ...] = _LAUNCHES) -> None:
        self.upstream = upstream.rstrip("/")
        self.actions = actions
        self.launched = threading.Event()
        self.release = threading.Event()
        self.instance_ids: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> HeldLaunch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Let a held answer go (to a launcher long gone), and stop serving."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.upstream + path, data=body or None, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        status, sent, answer = self._forward(method, path, headers, body)
        if any(action in body for action in self.actions) and not self.launched.is_set():
            found = re.findall(r"(?<![\w-])i-[0-9a-f]{8,17}\b", answer.decode(errors="replace"))
            self.instance_ids = sorted(set(found))
            self.launched.set()
            self.release.wait(timeout=300)
        return status, sent, answer

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                status, sent, answer = proxy._answer(self.command, self.path, headers, body)
                self.send_response(status)
                for key, value in sent.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "date",
                        "server",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                with contextlib.suppress(OSError):  # a launcher interrupted while it waited reads nothing
                    self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
