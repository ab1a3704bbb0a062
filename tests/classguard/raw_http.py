"""A few HTTP/1.1 exchanges over a plain socket, for what an HTTP client library hides: whether
the server keeps the connection, closes it, or answers before the body has been sent."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawConnection:
    """One TCP connection to ``127.0.0.1:port``; ``request`` sends bytes, ``response`` reads one answer."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        head = {"Host": "127.0.0.1", **(headers or {})}
        if body and "Content-Length" not in head and "Transfer-Encoding" not in head:
            head["Content-Length"] = str(len(body))
        lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
        self.send("\r\n".join(lines).encode() + body)

    def response(self) -> RawResponse:
        status_line = self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection without an answer")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.reader.read(int(headers.get("content-length", "0")))
        return RawResponse(status, headers, body)

    def exchange(self, method: str, path: str, headers: dict[str, str] | None = None,
                 body: bytes = b"") -> RawResponse:
        self.request(method, path, headers, body)
        return self.response()

    def closed_by_server(self) -> bool:
        """True once the server has closed its side (the next read sees end of file)."""
        try:
            return self.reader.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()
