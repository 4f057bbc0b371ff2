"""Run compile batches on a Ray cluster: the same work as the local pool, across machines.

Each Ray actor owns a one-worker :class:`~passlm.llvm.pool.WorkerPool`, so crash and timeout
isolation is the same as locally. Every node needs LLVM 19 at the paths of the toolchain and
passlm importable (install it on the nodes, or use a Ray ``runtime_env``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from passlm.errors import PasslmError
from passlm.llvm.backend import DEFAULT_TIMEOUT, Compiler, Result, Task
from passlm.llvm.toolchain import Toolchain


class _CompileActor:
    """A Ray actor: one isolated compile worker."""

    def __init__(self, toolchain: Toolchain, timeout: float) -> None:
        from passlm.llvm.pool import WorkerPool

        self.pool = WorkerPool(toolchain, workers=1, timeout=timeout)

    def run(self, tasks: list[Task]) -> list[Result]:
        return self.pool.run_tasks(tasks)

    def close(self) -> None:
        self.pool.close()


class RayCompiler(Compiler):
    """A :class:`Compiler` whose tasks run on Ray actors (``address=None``: a local instance)."""

    def __init__(
        self,
        toolchain: Toolchain,
        *,
        address: str | None = None,
        actors: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        num_cpus: int | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise PasslmError("--ray needs the ray package: pip install 'ray>=2.40'") from None
        self._ray = ray
        self.version = toolchain.version
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                ray.init(
                    address=address,
                    num_cpus=num_cpus if address is None else None,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=False,
                )
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise PasslmError(f"cannot connect to Ray at {address or 'local'}: {exc}") from None
        n = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor = ray.remote(num_cpus=1)(_CompileActor)
        self.actors = [actor.remote(toolchain, timeout) for _ in range(n)]

    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        if not tasks:
            return []
        from ray.util import ActorPool

        size = max(1, math.ceil(len(tasks) / (4 * len(self.actors))))
        chunks = [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]
        pool = ActorPool(self.actors)
        results: list[Result] = []
        for part in pool.map(lambda a, chunk: a.run.remote(chunk), chunks):  # keeps order
            results.extend(part)
        return results

    def close(self) -> None:
        ray = self._ray
        if self.actors:
            ray.get([a.close.remote() for a in self.actors])
            for a in self.actors:
                ray.kill(a)
            self.actors = []
        if self._owns and ray.is_initialized():
            ray.shutdown()
