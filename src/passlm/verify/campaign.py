"""Differential testing at scale: many programs, many pass lists, a reproducer per finding.

Each program is first checked split and linked back without optimization (a difference there
is a passlm bug), then for a number of rounds every function gets a pass list drawn from a
pool (the autotuner's best lists), or the lists a proposer (a model) gives it. A round whose
program behaves differently is localized to the function whose list alone reproduces it, that
list is minimized (passes removed while the difference stays), and the reproducer is written
out. Compiles that crash or hang LLVM are findings too. Results go to a JSON-lines log, one
line per program, so an interrupted campaign resumes where it stopped.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from passlm.errors import InputError, PasslmError
from passlm.files import atomic_write, safe_filename
from passlm.llvm.backend import Compiler
from passlm.llvm.passes import PassList, parse_pass_list
from passlm.verify.differential import DIFFERENT, Program, Verdict

LOG_NAME = "programs.jsonl"
REPRODUCERS = "reproducers"

Lists = dict[str, PassList | None]
Proposer = Callable[[Program], list[Lists]]  # one assignment per round


@dataclass
class Finding:
    """One pass list that miscompiled, crashed or hung on one function."""

    kind: str  # "miscompile", "link" (split/link changed behaviour), "crash", "timeout", "llvm"
    program: str
    function: str
    passes: str
    minimized: str | None = None
    expected: str = ""
    actual: str = ""
    reproducer: str | None = None


@dataclass
class ProgramResult:
    """What one program's checks found."""

    program: str
    oracle: bool
    builds: int = 0
    pairs: int = 0  # (function, pass list) pairs run and compared
    lists: list[str] = field(default_factory=list)  # distinct lists run
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # the program itself could not be handled


def read_log(path: Path) -> dict[str, ProgramResult]:
    """Results already in a campaign log, by program name (a torn last line is ignored)."""
    done: dict[str, ProgramResult] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue
        raw["findings"] = [Finding(**f) for f in raw.get("findings", [])]
        done[raw["program"]] = ProgramResult(**raw)
    return done


def load_pool(path: Path) -> list[PassList]:
    """Distinct pass lists from a tuned Parquet file (best lists) or a text file (one a line)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            column = pq.read_table(path, columns=["best_passes"]).column(0).to_pylist()
        except Exception as exc:
            raise InputError(f"{path}: not a tuned data set with best_passes: {exc}") from None
        texts = column
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        texts = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    pool, seen = [], set()
    for i, text in enumerate(texts):
        try:
            passes = parse_pass_list(text)
        except PasslmError as exc:
            raise InputError(f"{path}: list {i + 1}: {exc}") from None
        if str(passes) not in seen:
            seen.add(str(passes))
            pool.append(passes)
    if not pool:
        raise InputError(f"{path}: no pass lists")
    return pool


class Campaign:
    """Checks programs against a pool of pass lists; writes the log and reproducers."""

    def __init__(
        self,
        pool: Sequence[PassList],
        out: Path,
        *,
        rounds: int = 3,
        seed: int = 0,
        proposer: Proposer | None = None,
        minimize: bool = True,
    ) -> None:
        self.pool = list(pool)
        self.out = out
        self.rounds = rounds
        self.seed = seed
        self.proposer = proposer
        self.minimize = minimize
        self._lock = threading.Lock()
        out.mkdir(parents=True, exist_ok=True)

    @property
    def log_path(self) -> Path:
        """The JSON-lines log of checked programs."""
        return self.out / LOG_NAME

    def _record(self, result: ProgramResult) -> None:
        line = json.dumps(asdict(result), sort_keys=True) + "\n"
        with self._lock, self.log_path.open("a", encoding="utf-8") as f:
            f.write(line)
            f.flush()

    # ------------------------------------------------------------------ one program

    def check(self, program: Program, compiler: Compiler) -> ProgramResult:
        """Every check of one program; findings get reproducers."""
        result = ProgramResult(program.name, oracle=program.reference is not None)
        if not result.oracle:
            return result
        builds_before = program.builds
        rng = random.Random(f"{self.seed}:{program.name}")
        names = list(program.modules)
        plans: list[tuple[str, Lists]] = [("link", dict.fromkeys(names))]
        if self.pool:
            plans += [
                (f"pool-{r}", {n: rng.choice(self.pool) for n in names}) for r in range(self.rounds)
            ]
        if self.proposer is not None:
            plans += [(f"proposer-{r}", lists) for r, lists in enumerate(self.proposer(program))]
        seen_crash: set[tuple[str, str]] = set()
        for label, lists in plans:
            verdict = program.check(lists, compiler)
            ran = {n: p for n, p in lists.items() if p is not None and n not in verdict.failures}
            result.pairs += len(ran)
            result.lists = sorted(set(result.lists) | {str(p) for p in ran.values()})
            for name, error in verdict.failures.items():
                key = (name, str(lists[name]))
                if key not in seen_crash:
                    seen_crash.add(key)
                    kind = error.split(":", 1)[0]
                    result.findings.append(
                        Finding(kind, program.name, name, str(lists[name]), actual=error)
                    )
            if verdict.outcome == DIFFERENT:
                result.findings.extend(self._localize(program, compiler, label, lists, verdict))
        result.builds = program.builds - builds_before  # localization and minimization too
        return result

    def _localize(
        self, program: Program, compiler: Compiler, label: str, lists: Lists, verdict: Verdict
    ) -> list[Finding]:
        expected = verdict.reference.describe() if verdict.reference else ""
        actual = verdict.candidate.describe() if verdict.candidate else ""
        if label == "link":
            finding = Finding("link", program.name, "*", "", None, expected, actual)
            finding.reproducer = self._write_reproducer(program, finding, None)
            return [finding]
        culprits = []
        for name, passes in lists.items():
            if passes is None or name in verdict.failures:
                continue
            alone = program.check({name: passes}, compiler)
            if alone.outcome == DIFFERENT:
                culprits.append((name, passes, alone))
        if not culprits:  # only the combination misbehaves: keep all lists as the reproducer
            text = "; ".join(f"{n}: {p}" for n, p in lists.items() if p is not None)
            finding = Finding("miscompile", program.name, "*", text, None, expected, actual)
            finding.reproducer = self._write_reproducer(program, finding, None)
            return [finding]
        findings = []
        for name, passes, alone in culprits:
            small = self._minimized(program, compiler, name, passes) if self.minimize else None
            finding = Finding(
                "miscompile",
                program.name,
                name,
                str(passes),
                str(small) if small is not None else None,
                expected,
                alone.candidate.describe() if alone.candidate else actual,
            )
            finding.reproducer = self._write_reproducer(program, finding, alone)
            findings.append(finding)
        return findings

    def _minimized(
        self, program: Program, compiler: Compiler, name: str, passes: PassList
    ) -> PassList:
        """Remove passes one at a time while the program still misbehaves."""
        current = list(passes)
        i = 0
        while i < len(current) and len(current) > 1:
            trial = PassList(tuple(current[:i] + current[i + 1 :]))
            if program.check({name: trial}, compiler).outcome == DIFFERENT:
                current = list(trial)
            else:
                i += 1
        return PassList(tuple(current))

    def _write_reproducer(self, program: Program, finding: Finding, alone: Verdict | None) -> str:
        directory = self.out / REPRODUCERS / safe_filename(f"{program.name}-{finding.function}")
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / "program.ll", program.ir)
        if finding.function in program.modules:
            atomic_write(directory / "function.ll", program.modules[finding.function])
        info = asdict(finding) | {"runner": program.runner}
        atomic_write(directory / "finding.json", json.dumps(info, indent=1, sort_keys=True) + "\n")
        if alone is not None and alone.linked_ir is not None:
            atomic_write(directory / "miscompiled.ll", alone.linked_ir)
        if alone is not None and alone.reference is not None and alone.candidate is not None:
            atomic_write(directory / "expected.txt", alone.reference.stdout)
            atomic_write(directory / "actual.txt", alone.candidate.stdout)
        return str(directory)

    # ------------------------------------------------------------------ many programs

    def run(
        self,
        programs: Iterable[tuple[str, Callable[[], Program]]],
        compilers: Sequence[Compiler],
        *,
        on_done: Callable[[ProgramResult], None] | None = None,
    ) -> list[ProgramResult]:
        """Check each (name, loader) not already in the log; one thread per compiler."""
        done = read_log(self.log_path)
        todo = [(name, load) for name, load in programs if name not in done]
        results = list(done.values())
        free = list(compilers)
        slot = threading.Lock()

        def work(item: tuple[str, Callable[[], Program]]) -> ProgramResult:
            name, load = item
            with slot:
                compiler = free.pop()
            try:
                try:
                    result = self.check(load(), compiler)
                except PasslmError as exc:
                    result = ProgramResult(name, oracle=False, error=str(exc))
                self._record(result)
                return result
            finally:
                with slot:
                    free.append(compiler)

        with ThreadPoolExecutor(max_workers=len(compilers)) as threads:
            for result in threads.map(work, todo):
                results.append(result)
                if on_done is not None:
                    on_done(result)
        return results


def summarize(results: Sequence[ProgramResult]) -> dict:
    """Totals over a campaign: programs, oracle, builds, pairs, lists and findings by kind."""
    kinds: dict[str, int] = {}
    for r in results:
        for f in r.findings:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
    return {
        "programs": len(results),
        "with_oracle": sum(r.oracle for r in results),
        "errors": sum(r.error is not None for r in results),
        "builds": sum(r.builds for r in results),
        "pairs": sum(r.pairs for r in results),
        "distinct_lists": len({p for r in results for p in r.lists}),
        "findings": kinds,
        "miscompiles": [
            asdict(f) for r in results for f in r.findings if f.kind in ("miscompile", "link")
        ],
    }
