"""A small keep-alive HTTP/1.1 client for the load generator (asyncio, loopback-grade).

One connection per request in flight, reused when the response allows it; bodies by
``Content-Length`` or chunked transfer. It reads the whole response before the request
counts as done, as a client would.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlsplit

from silenttax.errors import InputError

_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Stale(ConnectionError):
    """The server closed the connection before answering (an idle keep-alive one)."""


def encode(item: Any) -> tuple[bytes | None, str | None]:
    """A payload -> (body, content type): JSON for mappings and lists, raw bytes and text."""
    if item is None:
        return None, None
    if isinstance(item, bytes):
        return item, "application/octet-stream"
    if isinstance(item, str):
        return item.encode(), "text/plain; charset=utf-8"
    try:
        return json.dumps(item).encode(), "application/json"
    except (TypeError, ValueError) as exc:
        raise InputError(f"payloads: an item is neither bytes, str nor JSON: {exc}") from None


class Client:
    """``await client.request(body, content_type) -> status``."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise InputError(f"target: need an http://host[:port]/path URL, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = parts.path or "/"
        self.path = path + (f"?{parts.query}" if parts.query else "")
        self._idle: list[_Conn] = []
        self._open: set[asyncio.StreamWriter] = set()

    def _head(self, body: bytes | None, content_type: str | None) -> bytes:
        method = "GET" if body is None else "POST"
        lines = [f"{method} {self.path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body is not None:
            lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def request(self, body: bytes | None, content_type: str | None) -> int:
        """Send one request and read its whole response; returns the status. A pooled
        connection the server closed while idle (its keep-alive timeout) is replaced
        once, as a client library would; any other failure raises."""
        reused = bool(self._idle)
        try:
            return await self._exchange(body, content_type)
        except _Stale:
            if not reused:
                raise ConnectionError("the server closed the connection") from None
            return await self._exchange(body, content_type, fresh=True)

    async def _exchange(self, body: bytes | None, content_type: str | None,
                        fresh: bool = False) -> int:  # fmt: skip
        if self._idle and not fresh:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self._open.add(writer)
        keep = False
        try:
            writer.write(self._head(body, content_type) + (body or b""))
            status, keep = await self._response(reader)
            return status
        finally:
            if keep:
                self._idle.append((reader, writer))
            else:
                self._open.discard(writer)
                writer.close()

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        try:
            line = await reader.readline()
        except ConnectionResetError:
            raise _Stale from None
        if not line:
            raise _Stale
        parts = line.split(None, 2)
        status = int(parts[1])
        length, chunked, keep = None, False, parts[0] == b"HTTP/1.1"
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection":
                keep = value == b"keep-alive" or (keep and value != b"close")
        if chunked:
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                await reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length is not None:
            await reader.readexactly(length)
        else:  # until the server closes
            await reader.read()
            keep = False
        return status, keep

    def close(self) -> None:
        for writer in list(self._open):
            writer.close()
        self._open.clear()
        self._idle.clear()
