"""Errors a user can act on. The CLI prints `message` and `hint` on one line, never a traceback."""

import re


class SparkyfruitError(Exception):
    """Something the user can fix; `exit_code` follows the CLI contract (2 usage/config, 1 failed run)."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class ConfigError(SparkyfruitError):
    """Bad usage or configuration, found before any work starts."""

    exit_code = 2


class StorageError(SparkyfruitError):
    """S3 or the local file system refused or failed an operation."""


class NotAnOutputError(SparkyfruitError):
    """A path that is not a finished sparkyfruit output. `state`: for an output still being written or
    stopped before its end, how far it got (JSON-ready: what `inspect --json` prints for it)."""

    def __init__(self, message: str, hint: str | None = None, state: dict | None = None):
        super().__init__(message, hint)
        self.state = state


class RunFailedError(SparkyfruitError):
    """The Spark job itself failed."""


def failure_summary(exc: BaseException) -> str:
    """The line of a Spark failure that says what went wrong: the innermost Python or Java exception,
    not the first line of a wrapper ("An exception was thrown from the Python worker:")."""
    text = str(exc).split("JVM stacktrace:")[0]
    lines = [
        line.strip().removeprefix("Caused by: ")
        for line in text.splitlines()
        if line.strip() and not line.startswith((" ", "\t"))
    ]
    causes = [line for line in lines if re.match(r"^[\w.$]+(Error|Exception)\b", line)]
    summary = (causes or lines or [type(exc).__name__])[-1]
    # Spark names the file a task was reading in an outer line ("Encountered error while reading file
    # s3a://b/k"): keep it, the inner SDK exception does not say which object failed
    text = str(exc)
    file = re.search(r"while reading file (\S+?)\.?(\s|$)", text) or re.search(
        r"\b((?:s3a?|file):/{1,3}[^\s:,;'\"]+\.(?:jpe?g|png))", text, re.IGNORECASE
    )  # S3A: "getFileStatus on s3a://..."
    if file and file.group(1) not in summary:
        summary += f" (while reading {file.group(1)})"
    return summary


class InterruptedRun(SparkyfruitError):
    """The user stopped the run (Ctrl-C, SIGINT)."""

    exit_code = 130
