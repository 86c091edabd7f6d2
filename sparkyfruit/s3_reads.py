"""Many small S3 GETs in flight from one process (keys mode, on executors), through obstore.

obstore is Rust's `object_store` (the Apache Arrow project's) with Python bindings: the HTTP client, the
signing and the retries run in Rust, so a GET costs the Python worker a fraction of what boto3 or
s3transfer cost (benchmarks/s3_get_cpu.py). That CPU is taken from TensorFlow on the same cores. Retries
are object_store's own: 5xx answers, resets, timeouts and a body cut off mid-stream are retried with
exponential backoff and jitter, up to `s3_max_attempts` attempts in all. Credentials come from boto3's
chain (or `--profile`) through obstore's `Boto3CredentialProvider`, so they resolve as everywhere else.
"""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from concurrent.futures import Future
from datetime import timedelta

from sparkyfruit.s3_settings import S3Settings

_READERS: dict[str, ObjectReader] = {}
_READERS_LOCK = threading.Lock()


def object_reader(s3: S3Settings) -> ObjectReader:
    """The process's reader for these settings: built once per Python worker, reused by its tasks."""
    key = s3.model_dump_json()
    with _READERS_LOCK:
        if key not in _READERS:
            _READERS[key] = ObjectReader(s3)
        return _READERS[key]


class ObjectReader:
    """GETs whole objects, `fetch_concurrency` at a time, on an event loop in a daemon thread.

    Parameters
    ----------
    s3 : S3Settings
        Endpoint, region, profile, attempts and timeouts.

    Example
    -------
    >>> reader = object_reader(S3Settings(s3_endpoint="http://127.0.0.1:9000"))
    >>> future = reader.get("fruit", "Training/Kiwi/0_100.jpg", etag='"9b2cf535f27731c974343645a3985328"')
    >>> content = future.result()  # bytes, or raises ObjectReadError
    """

    def __init__(self, s3: S3Settings):
        self._s3 = s3
        self._stores: dict[str, object] = {}
        self._loop = asyncio.new_event_loop()
        self._limit: asyncio.Semaphore | None = None
        threading.Thread(target=self._loop.run_forever, name="sparkyfruit-s3-reads", daemon=True).start()

    def get(self, bucket: str, key: str, etag: str | None = None) -> Future:
        """Start one GET; the future gives the object's bytes or raises ObjectReadError. With `etag`, an
        object replaced since it was listed fails (If-Match) instead of giving other bytes."""
        return self.get_many([(bucket, key, etag)])[0]

    def get_many(self, requests: list[tuple[str, str, str | None]]) -> list[Future]:
        """Start the GETs of (bucket, key, etag) requests, one future each, in one hand-over to the loop
        (a hand-over per GET wakes the loop's thread once per object). Cancelling a future stops its GET."""
        futures = [Future() for _ in requests]
        self._loop.call_soon_threadsafe(self._start_all, requests, futures)
        return futures

    def _start_all(self, requests, futures) -> None:
        for (bucket, key, etag), future in zip(requests, futures):
            if future.cancelled():
                continue
            task = self._loop.create_task(self._get(bucket, key, etag))
            task.add_done_callback(functools.partial(_settle, future))
            future.add_done_callback(
                lambda done, task=task: done.cancelled() and self._loop.call_soon_threadsafe(task.cancel)
            )

    async def _get(self, bucket: str, key: str, etag: str | None) -> bytes:
        import obstore

        if self._limit is None:
            self._limit = asyncio.Semaphore(self._s3.fetch_concurrency)
        async with self._limit:
            try:
                result = await obstore.get_async(self._store(bucket), key, options={"if_match": etag} if etag else None)
                return bytes(await result.bytes_async())
            except Exception as exc:  # after object_store's retries: one short reason for the row
                raise ObjectReadError(describe(exc)) from None

    def _store(self, bucket: str):
        if bucket not in self._stores:
            self._stores[bucket] = self._new_store(bucket)
        return self._stores[bucket]

    def _new_store(self, bucket: str):
        from obstore.auth.boto3 import Boto3CredentialProvider
        from obstore.store import S3Store

        from sparkyfruit import storage

        s3 = self._s3
        session = storage.aws_session(s3)
        if session.get_credentials() is None:
            raise ObjectReadError(
                "no AWS credentials: none in the environment, the AWS files or an instance role (or --profile)"
            )
        seconds = timedelta(seconds=1)
        return S3Store(
            bucket,
            region=s3.effective_region or session.region_name or _bucket_region(bucket, s3),
            endpoint=s3.s3_endpoint,
            virtual_hosted_style_request=not s3.s3_endpoint,  # as boto3: path style for a custom endpoint
            credential_provider=Boto3CredentialProvider(session),
            client_options={
                "allow_http": bool(s3.s3_endpoint and s3.s3_endpoint.startswith("http://")),
                "connect_timeout": s3.s3_connect_timeout * seconds,
                "read_timeout": s3.s3_read_timeout * seconds,
                "timeout": s3.s3_read_timeout * seconds,
            },
            retry_config={"max_retries": s3.s3_max_attempts - 1},
        )


def _settle(future: Future, task: asyncio.Task) -> None:
    """Hand a finished GET's outcome to the caller's future (unless the caller cancelled it)."""
    if future.cancelled():
        return
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


class ObjectReadError(Exception):
    """A GET that failed after every retry; the message is the reason a row records."""


def _bucket_region(bucket: str, s3: S3Settings) -> str:
    """The bucket's region, from S3's answer to one HEAD (object_store does not follow region redirects)."""
    from botocore.exceptions import ClientError

    from sparkyfruit import storage

    try:
        response = storage.s3_client(s3).head_bucket(Bucket=bucket)
    except ClientError as exc:
        response = exc.response
    return response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region", "us-east-1")


_S3_ERROR = re.compile(r"<Code>(?P<code>[^<]*)</Code>\s*<Message>(?P<message>[^<]*)</Message>")


def describe(exc: Exception) -> str:
    """A one-line reason from an obstore exception, whose text carries a multi-line debug dump."""
    name = type(exc).__name__
    if isinstance(exc, ObjectReadError):
        return str(exc)
    if name == "PreconditionError":
        return "the object was replaced after it was listed (its ETag no longer matches)"
    if isinstance(exc, FileNotFoundError):
        return "the object was removed after it was listed"
    text = str(exc).split("\n\nDebug source", 1)[0]
    found = _S3_ERROR.search(text)
    if found:
        text = text[: text.find("<")].rstrip(": ") + f": {found['code']}: {found['message']}"
    return f"{name}: {' '.join(text.split())}"[:400]
