"""A TCP proxy on 127.0.0.1 that delays every client->server chunk (every HTTP request) by a fixed time.

Small S3 objects are latency-bound: real S3 answers a GET in tens of milliseconds whatever its size. Put
this in front of the local S3 server to see whether a mode overlaps its requests. Runs in a daemon thread.
"""

from __future__ import annotations

import asyncio
import threading


class LatencyProxy:
    def __init__(self, target_port: int, delay_seconds: float = 0.030, host: str = "127.0.0.1"):
        self.target_port = target_port
        self.delay = delay_seconds
        self.host = host
        self.port: int | None = None
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="latency-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("latency proxy did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader, client_writer) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            self._pump(client_reader, server_writer, delayed=True),
            self._pump(server_reader, client_writer, delayed=False),
            return_exceptions=True,
        )

    async def _pump(self, reader, writer, delayed: bool) -> None:
        try:
            while chunk := await reader.read(65536):
                if delayed:
                    self.requests += 1
                    await asyncio.sleep(self.delay)
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()
