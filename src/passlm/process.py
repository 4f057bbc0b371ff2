"""The one way passlm starts a child process.

Every tool invocation goes through :func:`run_command`: it starts the child in its own process
group, enforces the timeout, kills the whole group on timeout or interruption, and raises an
error that carries the command, the exit status or signal, and the tail of stderr.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from passlm.errors import CommandFailed, CommandTimeout

STDERR_TAIL = 2000  # characters of stderr kept in an error message


@dataclass(frozen=True)
class Completed:
    """What a finished child process produced."""

    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8."""
        return self.stdout.decode("utf-8", errors="replace")


def describe_status(returncode: int) -> str:
    """'exit status 1' or 'killed by SIGSEGV' for a subprocess return code."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def first_error_line(stderr: bytes | str) -> str:
    """The most informative single line of a tool's stderr."""
    text = stderr.decode("utf-8", errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "error" in ln.lower():
            return ln
    return lines[0] if lines else ""


def kill_group(proc: subprocess.Popen) -> None:
    """Kill a child started with ``start_new_session`` and everything it started; reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_command(
    args: Sequence[str],
    *,
    timeout: float | None = 60.0,
    input: bytes | None = None,
    check: bool = True,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> Completed:
    """Run ``args`` to completion and return its output.

    Raises :class:`CommandTimeout` past ``timeout`` seconds (the process group is killed) and,
    when ``check`` is true, :class:`CommandFailed` on a non-zero exit.
    """
    argv = tuple(str(a) for a in args)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,  # own process group, so a timeout kills grandchildren too
    )
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.communicate()
        raise CommandTimeout(
            f"{argv[0]} timed out after {timeout:g}s: {shlex.join(argv)}"
        ) from None
    except BaseException:
        # KeyboardInterrupt or anything else: never leave an orphan behind.
        kill_group(proc)
        raise
    result = Completed(argv, proc.returncode, out, err)
    if check and proc.returncode != 0:
        tail = err.decode("utf-8", errors="replace")[-STDERR_TAIL:].strip()
        detail = first_error_line(tail) or describe_status(proc.returncode)
        raise CommandFailed(
            f"{os.path.basename(argv[0])} failed ({describe_status(proc.returncode)}): {detail}",
            detail=detail,
            stderr=tail,
        )
    return result
