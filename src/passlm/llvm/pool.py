"""Worker processes that keep parsed modules hot and survive LLVM crashes and hangs.

Each worker runs an :class:`~passlm.llvm.backend.InProcessCompiler`. The parent sends a chunk
of tasks that share one IR; the worker sends results back in batches (one message per chunk,
or every :data:`FLUSH_SECONDS`), so the parent's per-task overhead stays small.

Before each task the worker writes the task's index into a shared integer, so the parent always
knows which task a worker is on without a message per task. If the worker dies (abort,
segfault, SIGKILL, out of memory), that task is reported as a crash; if the index does not move
for longer than the time limit, the worker is killed and the task reported as a timeout. Either
way the worker is replaced and the chunk's unfinished tasks go back in the queue, so the batch
always completes.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from passlm.errors import PasslmError, ToolNotFound
from passlm.llvm.backend import (
    CRASH,
    DEFAULT_TIMEOUT,
    INTERNAL,
    TIMEOUT,
    Compiler,
    Result,
    Task,
)
from passlm.llvm.toolchain import Toolchain
from passlm.process import describe_status

STARTUP_TIMEOUT = 60.0
# A worker starts at ~210 MiB of address space; big -O3 compiles stay well under 1 GiB. The cap
# turns a runaway compile into that task's crash instead of the machine's out-of-memory killer.
DEFAULT_MEMORY_MB = 4096
FLUSH_SECONDS = 0.05  # a worker sends partial results at least this often

# A chunk: the IR shared by its tasks, and (task index, pass list, want_ir) for each.
Item = tuple[int, object, bool]
Chunk = tuple[str, list[Item]]


def _worker_main(
    conn: Connection, progress, toolchain: Toolchain, cache_size: int, memory_mb: int
) -> None:
    """Worker process loop: receive a chunk, run it, send back ``[(index, Result), ...]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and kills us
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from passlm.llvm.backend import InProcessCompiler

    try:
        compiler = InProcessCompiler(toolchain, cache_size=cache_size)
    except PasslmError as exc:
        conn.send(("failed", str(exc)))
        return
    # LLVM prints remarks and, before an abort, its error to stderr: keep that out of the
    # user's terminal, in a per-worker file the parent reads when the worker dies.
    fd, log = tempfile.mkstemp(prefix="passlm-worker-", suffix=".log")
    os.dup2(fd, 2)
    os.close(fd)
    conn.send(("ready", log))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        ir, items = msg
        os.ftruncate(2, 0)  # only the current chunk's messages matter
        os.lseek(2, 0, os.SEEK_SET)
        done: list[tuple[int, Result]] = []
        flushed = time.monotonic()
        for index, passes, want_ir in items:
            progress.value = index
            try:
                result = compiler.run_task(Task(ir, passes, want_ir))
            except Exception as exc:  # a bug in passlm, not LLVM: report it, keep the worker
                result = Result.failure(INTERNAL, f"{type(exc).__name__}: {exc}")
            done.append((index, result))
            if time.monotonic() - flushed > FLUSH_SECONDS:
                conn.send(done)
                done, flushed = [], time.monotonic()
        conn.send(done)


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start workers without re-importing ``__main__``.

    A spawned child normally re-runs the parent's main script to find pickled functions; the
    worker needs nothing from it, and re-running a user's script without a ``__main__`` guard
    would start workers recursively.
    """
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if hasattr(main, k)}
    try:
        for k in saved:
            setattr(main, k, None) if k == "__spec__" else delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _last_error(log: str) -> str:
    """': LLVM ERROR: ...' from a dead worker's stderr file, or ''."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.path.getsize(log) - 8192))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    for line in tail.splitlines():
        if "LLVM ERROR" in line or "Assertion" in line:
            return ": " + line.strip()[:300]
    return ""


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    progress: object  # shared int: index of the task the worker is running
    log: str  # the worker's stderr file
    ir: str = ""
    pending: dict[int, Item] = field(default_factory=dict)  # sent, no result yet
    seen: int = -1  # progress value at the last check
    task_start: float = 0.0
    deadline: float = math.inf

    @property
    def busy(self) -> bool:
        return bool(self.pending)


class WorkerPool(Compiler):
    """A :class:`Compiler` that fans tasks out to isolated worker processes.

    ``workers`` defaults to all cores; ``timeout`` is per task in seconds; ``memory_mb`` caps
    each worker's address space (0: no cap) so a runaway compile fails alone.
    """

    def __init__(
        self,
        toolchain: Toolchain,
        *,
        workers: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        chunk_size: int = 32,
        cache_size: int = 32,
        memory_mb: int = DEFAULT_MEMORY_MB,
    ) -> None:
        if workers is not None and workers < 1:
            raise PasslmError(f"workers must be at least 1, got {workers}")
        if timeout <= 0:
            raise PasslmError(f"timeout must be positive, got {timeout}")
        if memory_mb < 0:
            raise PasslmError(f"memory cap must be 0 (none) or positive, got {memory_mb} MiB")
        self.version = toolchain.version
        self.toolchain = toolchain
        self.n_workers = workers or os.cpu_count() or 1
        self.timeout = timeout
        self.chunk_size = chunk_size
        self.cache_size = cache_size
        self.memory_mb = memory_mb
        self._ctx = mp.get_context("spawn")  # never fork a parent that may hold threads
        self._workers: list[_Worker] = []
        self.restarts = 0  # workers replaced after a crash or timeout, for reports and tests

    # ------------------------------------------------------------------ workers

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        progress = self._ctx.RawValue("q", -1)
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, progress, self.toolchain, self.cache_size, self.memory_mb),
            daemon=True,
        )
        with _main_module_hidden():
            proc.start()
        child.close()
        if not parent.poll(STARTUP_TIMEOUT):
            proc.kill()
            raise ToolNotFound(f"a compile worker did not start within {STARTUP_TIMEOUT:g}s")
        try:
            status, detail = parent.recv()
        except EOFError:
            proc.join()
            raise ToolNotFound(
                f"a compile worker died at start-up ({describe_status(proc.exitcode or 0)})"
            ) from None
        if status != "ready":
            proc.join()
            raise ToolNotFound(str(detail))
        return _Worker(proc, parent, progress, detail)

    def start(self) -> None:
        """Start the worker processes (done lazily by the first batch)."""
        while len(self._workers) < self.n_workers:
            self._workers.append(self._spawn())

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers."""
        return [w.process.pid for w in self._workers if w.process.pid is not None]

    def current_tasks(self) -> dict[int, int]:
        """``{worker pid: index of the task it is running}`` for busy workers."""
        return {
            w.process.pid: w.progress.value  # type: ignore[attr-defined]
            for w in self._workers
            if w.busy and w.progress.value in w.pending  # type: ignore[attr-defined]
        }

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker``'s process and give the slot a fresh one, in place."""
        worker.process.kill()
        worker.process.join()
        worker.conn.close()
        _remove(worker.log)
        fresh = self._spawn()
        worker.process, worker.conn, worker.progress = fresh.process, fresh.conn, fresh.progress
        worker.log = fresh.log
        worker.pending, worker.seen, worker.deadline = {}, -1, math.inf
        self.restarts += 1

    def close(self) -> None:
        """Stop every worker."""
        for w in self._workers:
            with contextlib.suppress(OSError):
                w.conn.send(None)
        deadline = time.monotonic() + 2.0
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join()
            w.conn.close()
            _remove(w.log)
        self._workers = []

    def __del__(self) -> None:
        if getattr(self, "_workers", None):
            self.close()

    # ------------------------------------------------------------------ scheduling

    def _chunks(self, tasks: Sequence[Task]) -> deque[Chunk]:
        """Group tasks by IR and cut each group into chunks that keep every worker busy."""
        groups: dict[str, list[Item]] = {}
        for i, t in enumerate(tasks):
            groups.setdefault(t.ir, []).append((i, t.passes, t.want_ir))
        size = max(1, min(self.chunk_size, math.ceil(len(tasks) / (2 * self.n_workers))))
        chunks: deque[Chunk] = deque()
        for ir, items in groups.items():
            for k in range(0, len(items), size):
                chunks.append((ir, items[k : k + size]))
        return chunks

    def _assign(self, worker: _Worker, chunk: Chunk) -> None:
        if not worker.process.is_alive():  # died while idle (killed from outside)
            self._replace(worker)
        ir, items = chunk
        worker.ir = ir
        worker.pending = {item[0]: item for item in items}
        # Until the worker reports, blame the chunk's first task for anything that happens.
        worker.progress.value = worker.seen = items[0][0]  # type: ignore[attr-defined]
        worker.task_start = time.monotonic()
        worker.deadline = worker.task_start + self.timeout
        worker.conn.send(chunk)

    def _receive(self, worker: _Worker, results: list) -> bool:
        """Read every batch of results the worker has sent; False if its pipe is closed."""
        try:
            while worker.conn.poll():
                for index, result in worker.conn.recv():
                    results[index] = result
                    worker.pending.pop(index, None)
        except (EOFError, OSError):
            return False
        return True

    def _check_progress(self, worker: _Worker, now: float) -> None:
        current = worker.progress.value  # type: ignore[attr-defined]
        if current != worker.seen:
            worker.seen, worker.task_start, worker.deadline = current, now, now + self.timeout

    def _fail(self, worker: _Worker, kind: str, message: str, results: list, queue: deque) -> None:
        """Blame the running task, requeue the chunk's unfinished rest, replace the worker."""
        culprit = worker.progress.value  # type: ignore[attr-defined]
        if culprit in worker.pending:
            elapsed = time.monotonic() - worker.task_start
            results[culprit] = Result.failure(kind, message, elapsed)
            del worker.pending[culprit]
        if worker.pending:
            queue.appendleft((worker.ir, sorted(worker.pending.values(), key=lambda i: i[0])))
        self._replace(worker)

    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        """Run every task on the workers; crashes and timeouts become failed results."""
        results: list[Result | None] = [None] * len(tasks)
        if not tasks:
            return []
        self.start()
        queue = self._chunks(tasks)
        try:
            while queue or any(w.busy for w in self._workers):
                for w in self._workers:
                    if not w.busy and queue:
                        self._assign(w, queue.popleft())
                busy = [w for w in self._workers if w.busy]
                ready = wait(
                    [w.conn for w in busy] + [w.process.sentinel for w in busy],
                    timeout=max(0.0, min(w.deadline for w in busy) - time.monotonic()),
                )
                now = time.monotonic()
                for w in busy:
                    alive = self._receive(w, results) if w.conn in ready else True
                    if w.process.sentinel in ready or not alive:
                        self._receive(w, results)  # results sent just before it died
                        w.process.join()
                        status = describe_status(w.process.exitcode or 0)
                        message = f"compile worker {status}" + _last_error(w.log)
                        self._fail(w, CRASH, message, results, queue)
                        continue
                    self._check_progress(w, now)
                    if w.busy and now >= w.deadline:
                        message = f"compile timed out after {self.timeout:g}s"
                        self._fail(w, TIMEOUT, message, results, queue)
        except BaseException:
            # Ctrl-C or an error here: leave no worker running a half-done chunk.
            for w in self._workers:
                w.process.kill()
            self.close()
            raise
        return results  # type: ignore[return-value]
