"""A compiler that remembers its results, so a list compiled twice on a function runs once.

Several strategies compile while they propose: ``guided-N`` compiles -Oz and each pick to choose
the next, ``feedback-K`` compiles each answer to write its feedback, a model with the -Oz context
compiles -Oz to write its prompt. The caller then compiles the candidates and -Oz again to choose
among them. Wrapping the compile pool in :class:`CachedCompiler` for the duration of one job
answers those repeats from memory: the same results, none of the work.

A result is keyed by the IR's digest and the pass list. A remembered result without IR answers a
task that wants IR only if the compile failed (there is no IR to give); ``always_ir`` asks the
inner compiler for IR on every compile, for jobs (``passlm optimize``) whose later compiles all
want it. Results of bugs in passlm itself (``internal``) are not remembered.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

from passlm.llvm.backend import INTERNAL, Compiler, Result, Task

_Key = tuple[str, tuple[str, ...]]

DEFAULT_MAX_CHARS = 64 << 20  # what is remembered before the oldest results go (see _size)
_ENTRY = 256  # a result's own size, in characters, besides its IR


def _size(result: Result) -> int:
    return _ENTRY + len(result.ir or "")


class CachedCompiler(Compiler):
    """``inner`` with its results remembered (least recently used forgotten first, once their
    IR and a fixed allowance per result pass ``max_chars`` characters).

    It does not own ``inner``: closing it closes nothing. ``compiled`` and ``reused`` count the
    tasks the inner compiler ran and those answered from memory.
    """

    def __init__(
        self, inner: Compiler, *, always_ir: bool = False, max_chars: int = DEFAULT_MAX_CHARS
    ) -> None:
        if max_chars < 0:
            raise ValueError(f"max_chars must be >= 0, got {max_chars}")
        self.inner = inner
        self.version = inner.version
        self.always_ir = always_ir
        self.max_chars = max_chars
        self.compiled = 0
        self.reused = 0
        self._results: OrderedDict[_Key, Result] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._results)

    @staticmethod
    def _key(task: Task) -> _Key:
        return hashlib.sha1(task.ir.encode("utf-8")).hexdigest(), task.passes.passes

    def _known(self, key: _Key, want_ir: bool) -> Result | None:
        found = self._results.get(key)
        if found is None or (want_ir and found.ok and found.ir is None):
            return None
        self._results.move_to_end(key)
        return found

    def _remember(self, key: _Key, result: Result) -> None:
        if result.error_kind == INTERNAL:
            return
        old = self._results.pop(key, None)
        if old is not None:
            self._chars -= _size(old)
        self._results[key] = result
        self._chars += _size(result)
        while self._chars > self.max_chars and self._results:
            self._chars -= _size(self._results.popitem(last=False)[1])

    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        out: list[Result | None] = [None] * len(tasks)
        pending: dict[_Key, list[int]] = {}  # each distinct compile once, however often asked
        for i, task in enumerate(tasks):
            key = self._key(task)
            found = self._known(key, task.want_ir)
            if found is not None:
                out[i] = found
                self.reused += 1
            else:
                pending.setdefault(key, []).append(i)
        if pending:
            fresh = [
                Task(
                    tasks[slots[0]].ir,
                    tasks[slots[0]].passes,
                    self.always_ir or any(tasks[i].want_ir for i in slots),
                )
                for slots in pending.values()
            ]
            self.compiled += len(fresh)
            self.reused += sum(len(slots) - 1 for slots in pending.values())
            for (key, slots), result in zip(
                pending.items(), self.inner.run_tasks(fresh), strict=True
            ):
                self._remember(key, result)
                for i in slots:
                    out[i] = result
        return out  # type: ignore[return-value]
