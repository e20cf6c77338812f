"""An EC2 instance-metadata service (IMDSv2) on loopback: a session token, then a notice once posted."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "stub-token"
NOTICE = {"action": "terminate", "time": "2026-11-26T08:00:00Z"}


class MetadataService:
    """Serves ``spot/instance-action`` (404 until :attr:`notice` is set) to callers holding a token.

    ``instance-id`` and ``instance-type`` are served too where given.

    Example:
        >>> with MetadataService() as imds:  # doctest: +SKIP
        ...     os.environ["AUTOTWEAK_IMDS_ENDPOINT"] = imds.endpoint
        ...     imds.notice.set()  # the two-minute warning
    """

    def __init__(self, instance_id: str | None = None, instance_type: str | None = None) -> None:
        self.notice = threading.Event()
        served = {"instance-id": instance_id, "instance-type": instance_type}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.notice, served))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """The value for ``AUTOTWEAK_IMDS_ENDPOINT``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MetadataService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _handler(notice: threading.Event, served: dict[str, str | None]) -> type[BaseHTTPRequestHandler]:
    class _Metadata(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            ok = self.path == "/latest/api/token" and "X-aws-ec2-metadata-token-ttl-seconds" in self.headers
            self._answer(200 if ok else 400, TOKEN)

        def do_GET(self) -> None:
            if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
                self._answer(401, "")
            elif self.path == "/latest/meta-data/spot/instance-action" and notice.is_set():
                self._answer(200, json.dumps(NOTICE))
            elif value := served.get(self.path.removeprefix("/latest/meta-data/")):
                self._answer(200, value)
            else:
                self._answer(404, "")

        def _answer(self, code: int, body: str) -> None:
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            return None

    return _Metadata
