"""A run's lease on its output: one writer at a time.

The lease is `_sparkyfruit.lease.json` in the output, taken with a create-if-absent write before Spark starts
and removed when the run ends. Who holds it, and whether that holder is alive, is decided per store:

- a local folder: the holder keeps an exclusive `flock` on the file for its whole life, and the kernel drops
  it when the process dies, however it dies. The lock is the truth; the file's content only names the holder.
- S3 and HDFS: the holder rewrites the file every RENEW_SECONDS. A lease renewed within EXPIRY_SECONDS is
  live; one whose holder ran on this host and whose process is gone is dead at once. On S3 the take-over and
  every renewal are conditional on the object being the one that was read (`If-Match`), so two runs can
  never both hold it; HDFS has no conditional replace, so a run that lost its lease notices it at its next
  renewal and stops before its next commit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sparkyfruit import locations, processes, storage
from sparkyfruit.errors import ConfigError, RunFailedError
from sparkyfruit.s3_settings import S3Settings

LEASE_NAME = "_sparkyfruit.lease.json"  # in the output's folder; output_format counts it as sparkyfruit's own

RENEW_SECONDS = 10.0
EXPIRY_SECONDS = 60.0  # S3 and HDFS: a lease not renewed for this long is a dead run's


class LeaseHeldError(RunFailedError):
    """Another live run holds the output (exit 1: nothing was wrong with this command)."""


class LeaseLostError(RunFailedError):
    """This run's lease was taken over (it stalled past the expiry): it stops before its next commit."""


@dataclass
class LeaseRecord:
    """The content of the lease file: who holds the output, and since when."""

    host: str
    pid: int
    process_started: int | None  # the process's start time in clock ticks (/proc), so a reused pid is told apart
    since: str
    renewed_at: str
    token: str
    command: str = "encode"
    renewals: int = 0  # also makes every renewal's content (and S3 ETag) new

    @classmethod
    def of_this_process(cls, command: str) -> LeaseRecord:
        stamp = _now()
        pid = os.getpid()
        return cls(socket.gethostname(), pid, processes.start_time(pid), stamp, stamp, uuid.uuid4().hex, command)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def parse(cls, text: str) -> LeaseRecord | None:
        try:
            data = json.loads(text)
            names = {field.name for field in dataclasses.fields(cls)}
            return cls(**{name: value for name, value in data.items() if name in names})
        except (ValueError, TypeError, AttributeError):
            return None  # half written (a crash mid-write) or changed by hand: nobody holds it

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since}"

    def is_alive(self, now: float | None = None) -> bool:
        """Whether its holder may still be running (S3 and HDFS: from the content alone)."""
        if self.host == socket.gethostname():
            return processes.is_running(self.pid) and processes.start_time(self.pid) == self.process_started
        renewed = dt.datetime.fromisoformat(self.renewed_at).timestamp()
        return (time.time() if now is None else now) - renewed < EXPIRY_SECONDS


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Lease:
    """A held lease: made by `hold()`. `check()` before each commit raises LeaseLostError if it was lost."""

    def __init__(self, output: locations.Location, s3: S3Settings, record: LeaseRecord):
        self.output = output
        self.location = output.child(LEASE_NAME)
        self.s3 = s3
        self.record = record
        self._file = None  # local: the open, locked file
        self._made_folders: list[Path] = []
        self._etag: str | None = None  # S3: the version this run last wrote
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    # ------------------------------------------------------------ taking it

    def take(self, *, takeover: bool) -> None:
        """Take the lease, or raise LeaseHeldError (a live holder) or ConfigError (a dead run's lease, and
        takeover is not allowed)."""
        take = self._take_local if self.location.is_local else self._take_remote
        for _ in range(5):  # False: the lease was released or made again while we looked; look again
            if take(takeover):
                break
        else:
            raise LeaseHeldError(f"Could not take the lease {self.location.uri}: it keeps changing.", "Try again.")
        if not self.location.is_local:
            self._renewer = threading.Thread(target=self._renew_until_stopped, name="sparkyfruit-lease", daemon=True)
            self._renewer.start()

    def _take_local(self, takeover: bool) -> bool:
        import fcntl

        path = Path(self.location.path)
        # the folders made for the lease go with it, if nothing else was written (a run refused by a later check)
        self._made_folders = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
        except FileExistsError:
            try:
                descriptor, created = os.open(path, os.O_RDWR), False
            except FileNotFoundError:
                return False
        file = os.fdopen(descriptor, "r+b")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = LeaseRecord.parse(file.read().decode("utf-8", "replace"))
            file.close()
            raise self._held(holder) from None
        if os.fstat(file.fileno()).st_ino != _inode(path):  # its holder removed it while we locked it
            file.close()
            return False
        if not created and not takeover:  # unlocked: its holder died
            holder = LeaseRecord.parse(file.read().decode("utf-8", "replace"))
            file.close()
            raise self._dead(holder)
        file.seek(0)
        file.truncate()
        file.write(self.record.to_json().encode("utf-8"))
        file.flush()
        self._file = file
        return True

    def _take_remote(self, takeover: bool) -> bool:
        if self.location.is_s3:
            self._etag = storage.put_conditional(self.location, self.record.to_json(), self.s3, if_match=None)
            if self._etag is not None:
                return True
            text, etag = storage.read_with_etag(self.location, self.s3)
        else:
            if storage.create_new(self.location, self.record.to_json(), self.s3):
                return True
            text, etag = storage.read_text(self.location, self.s3), None
        if text is None:
            return False
        holder = LeaseRecord.parse(text)
        if holder is not None and holder.is_alive():
            raise self._held(holder)
        if not takeover:
            raise self._dead(holder)
        if self.location.is_s3:  # only if it is still the dead run's: of two runs taking over, one wins
            self._etag = storage.put_conditional(self.location, self.record.to_json(), self.s3, if_match=etag)
            return self._etag is not None
        storage.delete(self.location, self.s3)
        return storage.create_new(self.location, self.record.to_json(), self.s3)

    def _held(self, holder: LeaseRecord | None) -> LeaseHeldError:
        who = holder.describe() if holder is not None else "a run that is starting"
        return LeaseHeldError(
            f"Another run is writing to {self.output.shown} ({who}); nothing was touched.",
            "Wait for it to end (then --resume adds what it missed), or choose another --output.",
        )

    def _dead(self, holder: LeaseRecord | None) -> ConfigError:
        who = f" ({holder.describe()})" if holder is not None else ""
        return ConfigError(
            f"{self.output.shown} was left by a run that stopped{who}; nothing was touched.",
            "Continue it with --resume, or replace it with --overwrite.",
        )

    # ------------------------------------------------------------ keeping it

    def _renew_until_stopped(self) -> None:
        while not self._lost and not self._stop.wait(RENEW_SECONDS):
            try:
                self._renew()
            except Exception:  # noqa: BLE001 - a store that fails now may answer at the next renewal
                continue

    def _renew(self) -> None:
        self.record.renewed_at = _now()
        self.record.renewals += 1
        if self.location.is_s3:
            etag = storage.put_conditional(self.location, self.record.to_json(), self.s3, if_match=self._etag)
            if etag is None:
                self._lost = "its lease was taken over by another run"
            self._etag = etag or self._etag
            return
        current = LeaseRecord.parse(storage.read_text(self.location, self.s3) or "")
        if current is None or current.token != self.record.token:
            self._lost = "its lease was taken over by another run" if current is not None else "its lease was removed"
            return
        storage.write_text(self.location, self.record.to_json(), self.s3)

    def check(self) -> None:
        """Raise LeaseLostError if this run lost its lease: it must not commit any more."""
        if self._lost:
            raise LeaseLostError(
                f"This run stopped: {self._lost} in {self.output.shown} (it was not renewed for "
                f"{EXPIRY_SECONDS:.0f} s).",
                "Another run now writes there; when it has ended, --resume adds what is missing.",
            )

    # ------------------------------------------------------------ giving it back

    def release(self) -> None:
        """Remove the lease file if it is still this run's."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=RENEW_SECONDS)
        if self._file is not None:
            path = Path(self.location.path)
            if _inode(path) == os.fstat(self._file.fileno()).st_ino:
                path.unlink()  # still locked by this run: nobody else can hold it meanwhile
            self._file.close()
            self._file = None
            for folder in self._made_folders:  # deepest first; one that holds anything stays
                try:
                    folder.rmdir()
                except OSError:
                    break
            return
        if self._lost:
            return
        if self.location.is_s3:
            storage.delete_conditional(self.location, self._etag, self.s3)
            return
        current = LeaseRecord.parse(storage.read_text(self.location, self.s3) or "")
        if current is not None and current.token == self.record.token:
            storage.delete(self.location, self.s3)


def live_holder(output: locations.Location, s3: S3Settings) -> LeaseRecord | None:
    """Who holds `output`'s lease now, or None when nobody does (no lease, or a dead run's). Reads only."""
    location = output.child(LEASE_NAME)
    if not location.is_local:
        text = storage.read_text(location, s3)
        holder = LeaseRecord.parse(text) if text is not None else None
        return holder if holder is not None and holder.is_alive() else None
    import fcntl

    try:
        file = open(location.path, "rb")
    except FileNotFoundError:
        return None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)  # given back when the file closes
        except BlockingIOError:  # its holder keeps it locked: alive
            return LeaseRecord.parse(file.read().decode("utf-8", "replace"))
    return None


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


class hold:  # noqa: N801 - used as `with lease.hold(...)`
    """Hold the lease on `output` for the body of a with block.

    Parameters
    ----------
    output: the output's location.
    s3: the S3 settings (for an s3:// output).
    takeover: whether a dead run's lease may be taken over (--resume, --overwrite).
    command: what the lease names as its holder's work.

    Example
    -------
    >>> with hold(config.output_location, config, takeover=config.resume) as lease:
    ...     lease.check()  # before each commit
    """

    def __init__(self, output: locations.Location, s3: S3Settings, *, takeover: bool, command: str = "encode"):
        self.lease = Lease(output, s3, LeaseRecord.of_this_process(command))
        self.takeover = takeover

    def __enter__(self) -> Lease:
        self.lease.take(takeover=self.takeover)
        return self.lease

    def __exit__(self, *exc_info) -> None:
        self.lease.release()
