"""An HTTP proxy on 127.0.0.1 in front of the S3 server that breaks a chosen fraction of requests, the way a
flaky network or a throttling S3 does: a 503 SlowDown answer, a connection reset, or a response body cut
short after its headers promised more. Objects whose key contains one of `always_fail` get a 500 on every
request; those with one of `always_deny` a 403 AccessDenied on every GET (a HEAD still answers, as for an
object under a KMS key the reader may not use); those with one of `keep_on_delete` survive a DeleteObjects,
whose answer then lists them as errors while the batch's other keys are deleted (as S3 answers a batch with
some keys under a deny policy). Used by the reliability tests; runs in daemon threads.
`counts` says what was injected.
"""

from __future__ import annotations

import http.client
import random
import socket
import socketserver
import struct
import threading
import urllib.parse
from collections import Counter

KINDS = ("slowdown", "reset", "truncate")
SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)

DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'
)


class FaultProxy:
    def __init__(
        self,
        target_port: int,
        fraction: float = 0.1,
        kinds: tuple[str, ...] = KINDS,
        seed: int = 0,
        always_fail: tuple[str, ...] = (),
        always_deny: tuple[str, ...] = (),
        keep_on_delete: tuple[str, ...] = (),
    ):
        self.target_port = target_port
        self.fraction = fraction
        self.kinds = kinds
        self.always_fail = always_fail
        self.always_deny = always_deny
        self.keep_on_delete = keep_on_delete
        self.counts: Counter = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    @property
    def faulty_fraction(self) -> float:
        total = self.counts["requests"]
        return sum(self.counts[kind] for kind in (*KINDS, "always_fail")) / total if total else 0.0

    def _pick(self, method: str, path: str) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            self.counts[method] += 1
            if any(marker in path for marker in self.always_fail):
                self.counts["always_fail"] += 1
                return "always_fail"
            if method == "GET" and any(marker in path for marker in self.always_deny):
                self.counts["always_deny"] += 1
                return "always_deny"
            if self._random.random() >= self.fraction:
                return None
            kinds = [k for k in self.kinds if k != "truncate" or method == "GET"] or ["slowdown"]
            kind = self._random.choice(kinds)
            self.counts[kind] += 1
            return kind

    def _serve(self, client: socket.socket) -> None:
        stream = client.makefile("rb")
        upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=60)
        try:
            while True:
                request = _read_request(stream)
                if request is None:
                    return
                method, path, headers, body = request
                headers.pop("Expect", None)  # the body is already read; the server answers at once
                if method == "POST" and path.endswith("?delete") and self.keep_on_delete:
                    client.sendall(self._delete_keeping(path, headers, body))
                    continue
                fault = self._pick(method, path)
                if fault == "reset":
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if fault in ("slowdown", "always_fail", "always_deny"):
                    status, reason, payload = {
                        "slowdown": (503, "Slow Down", SLOWDOWN),
                        "always_fail": (500, "Internal Server Error", INTERNAL),
                        "always_deny": (403, "Forbidden", DENIED),
                    }[fault]
                    head = _response_head(status, reason, [("Content-Type", "application/xml")], len(payload))
                    client.sendall(head if method == "HEAD" else head + payload)  # a HEAD answer has no body
                    continue
                upstream.request(method, path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                kept = [
                    (k, v)
                    for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                ]
                length = int(response.getheader("Content-Length", len(payload))) if method == "HEAD" else len(payload)
                head = _response_head(response.status, response.reason, kept, length)
                if fault == "truncate" and len(payload) > 1:
                    client.sendall(head + payload[: len(payload) // 2])
                    return  # the promised rest never comes: the client sees a short body, then EOF
                client.sendall(head + (b"" if method == "HEAD" else payload))
        except (OSError, http.client.HTTPException):
            return
        finally:
            upstream.close()
            try:
                client.close()
            except OSError:
                pass

    def _delete_keeping(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """Answer a DeleteObjects batch: each key is deleted with its own DELETE upstream, except those that
        contain a `keep_on_delete` marker, which the answer lists as AccessDenied errors."""
        from xml.etree import ElementTree
        from xml.sax.saxutils import escape

        bucket = path.split("?", 1)[0].strip("/")
        keys = [element.text or "" for element in ElementTree.fromstring(body).iter() if element.tag.endswith("Key")]
        errors = []
        upstream = http.client.HTTPConnection("127.0.0.1", self.target_port, timeout=60)
        try:
            for key in keys:
                if any(marker in key for marker in self.keep_on_delete):
                    with self._lock:
                        self.counts["kept_on_delete"] += 1
                    errors.append(
                        f"<Error><Key>{escape(key)}</Key><Code>AccessDenied</Code><Message>Access Denied</Message>"
                        "</Error>"
                    )
                    continue
                # the server tells a client by these (it signs nothing it checks here)
                forwarded = {name: headers[name] for name in ("Authorization", "User-Agent") if name in headers}
                upstream.request("DELETE", f"/{bucket}/{urllib.parse.quote(key)}", headers=forwarded)
                upstream.getresponse().read()
        finally:
            upstream.close()
        payload = (
            '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            + "".join(errors)
            + "</DeleteResult>"
        ).encode()
        return _response_head(200, "OK", [("Content-Type", "application/xml")], len(payload)) + payload


def _read_request(stream):
    line = stream.readline(65537)
    if not line or not line.strip():
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while (header := stream.readline(65537)) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip()] = value.strip()
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while (size := int(stream.readline().split(b";")[0], 16)) > 0:
            body += stream.read(size)
            stream.readline()
        while stream.readline() not in (b"\r\n", b"\n", b""):
            pass
        headers.pop("Transfer-Encoding")
        headers["Content-Length"] = str(len(body))
    else:
        body = stream.read(int(headers.get("Content-Length", 0) or 0))
    return method, path, headers, body


def _response_head(status: int, reason: str, headers: list[tuple[str, str]], length: int) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers), f"Content-Length: {length}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
