"""Differential testing, per-function linking and the deny list, on real programs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from passlm.errors import InputError
from passlm.llvm.backend import Compiler, InProcessCompiler, Result, Task
from passlm.llvm.denylist import load_denylist, parse_denylist
from passlm.llvm.ir import compile_source, count_instructions, split_functions
from passlm.llvm.link import link_functions, public_symbols
from passlm.llvm.passes import parse_pass_list
from passlm.verify.campaign import Campaign, read_log, summarize
from passlm.verify.differential import (
    DIFFERENT,
    NO_ORACLE,
    SAME,
    Program,
    execute,
    run_program,
    same_list_everywhere,
)

from .conftest import FIXTURES, run_passlm

EXPECTED = "15 7 70 "  # the start of sample.c's output line


def _defines(ir: str, name: str) -> bool:
    return re.search(rf"^define [^@]*@{name}\(", ir, re.M) is not None


class MiscompilingCompiler(Compiler):
    """A real compiler that 'miscompiles' classify() whenever a list runs sroa.

    It stands in for an LLVM bug: the optimized IR of classify returns 71 where the program
    expects 70, so the program's output changes and only lists with sroa are to blame.
    """

    def __init__(self, real: Compiler) -> None:
        self.real = real
        self.version = real.version
        self.calls = 0

    def run_tasks(self, tasks: Sequence[Task]) -> list[Result]:
        self.calls += len(tasks)
        results = self.real.run_tasks(tasks)
        out = []
        for task, result in zip(tasks, results, strict=True):
            if "sroa" in task.passes.passes and _defines(task.ir, "classify") and result.ir:
                result = Result(result.count, re.sub(r"\b70\b", "71", result.ir))
            out.append(result)
        return out


@pytest.fixture(scope="module")
def program(toolchain, sample_ir, sample_functions) -> Program:
    return Program(sample_ir, toolchain, name="sample.c", modules=dict(sample_functions))


@pytest.fixture(scope="module")
def compiler(toolchain):
    with InProcessCompiler(toolchain) as c:
        yield c


def test_reference_run_prints_the_program_output(program):
    ref = program.reference
    assert ref is not None and ref.status == "exit" and ref.code == 0
    assert ref.stdout.startswith(EXPECTED)


def test_public_symbols_are_the_non_local_definitions(sample_ir):
    names = public_symbols(sample_ir)
    assert "main" in names and "sum_array" in names and "greeting" in names
    assert "clamp" not in names and "table" not in names  # static in sample.c
    assert not any(n.startswith(".str") for n in names)  # private string constants


def test_link_back_restores_the_interface_and_counts(toolchain, sample_ir, compiler, program):
    optimized = {n: compiler.run(m, "-Oz").ir for n, m in program.modules.items()}
    linked = link_functions(sample_ir, optimized, toolchain)
    assert count_instructions(linked) == sum(count_instructions(t) for t in optimized.values())
    assert re.search(r"^define internal [^@]*@clamp\(", linked, re.M)  # local again
    assert re.search(r"^@table = internal", linked, re.M)
    assert re.search(r"^define dso_local [^@]*@sum_array\(", linked, re.M)
    assert program.compare(linked).outcome == SAME


def test_link_back_works_for_cpp(toolchain, compiler):
    ir = compile_source(FIXTURES / "sample.cpp", toolchain)
    modules = split_functions(ir, toolchain)
    optimized = {n: compiler.run(m, "-Oz").ir for n, m in modules.items()}
    linked = link_functions(ir, optimized, toolchain)
    assert set(modules) <= set(re.findall(r"^define [^@]*@([\w.$]+)\(", linked, re.M))


def test_same_lists_and_unoptimized_link_match_the_reference(program, compiler):
    for passes in ("-Oz", "-O3", "-mem2reg -instcombine -simplifycfg"):
        verdict = program.check(same_list_everywhere(program, parse_pass_list(passes)), compiler)
        assert verdict.outcome == SAME, passes
    assert program.check(dict.fromkeys(program.modules), compiler).outcome == SAME


def test_a_miscompiling_list_is_caught(program, compiler):
    bad = MiscompilingCompiler(compiler)
    lists = same_list_everywhere(program, parse_pass_list("-instcombine -sroa -Oz"))
    verdict = program.check(lists, bad)
    assert verdict.outcome == DIFFERENT and not verdict.ok
    assert verdict.reference.stdout.split()[2] == "70"
    assert verdict.candidate.stdout.split()[2] == "71"
    assert "71" in verdict.candidate.describe()


def test_campaign_localizes_minimizes_and_keeps_a_reproducer(program, compiler, tmp_path):
    bad = MiscompilingCompiler(compiler)
    pool = [parse_pass_list("-instcombine -sroa -Oz")]
    campaign = Campaign(pool, tmp_path, rounds=1, seed=3)
    result = campaign.check(program, bad)
    miscompiles = [f for f in result.findings if f.kind == "miscompile"]
    assert len(miscompiles) == 1
    f = miscompiles[0]
    assert f.function == "classify" and f.minimized == "-sroa"
    repro = tmp_path / "reproducers" / "sample.c-classify"
    assert {p.name for p in repro.iterdir()} >= {
        "program.ll",
        "function.ll",
        "finding.json",
        "miscompiled.ll",
        "expected.txt",
        "actual.txt",
    }
    assert json.loads((repro / "finding.json").read_text())["minimized"] == "-sroa"
    assert "@classify(" in (repro / "function.ll").read_text()


def test_campaign_log_resumes_without_rechecking(program, compiler, tmp_path):
    pool = [parse_pass_list("-Oz"), parse_pass_list("-O1")]
    counting = MiscompilingCompiler(compiler)  # no sroa in the pool: an honest compiler
    campaign = Campaign(pool, tmp_path, rounds=2)
    first = campaign.run([("sample.c", lambda: program)], [counting])
    assert [r.findings for r in first] == [[]] and first[0].builds == 3
    calls = counting.calls

    def must_not_load():
        raise AssertionError("already checked")

    again = Campaign(pool, tmp_path, rounds=2).run([("sample.c", must_not_load)], [counting])
    assert counting.calls == calls and len(again) == 1
    assert read_log(tmp_path / "programs.jsonl")["sample.c"].pairs == first[0].pairs
    s = summarize(again)
    assert s["programs"] == 1 and s["miscompiles"] == [] and s["distinct_lists"] == 2


def test_crashing_lists_are_findings_and_the_rest_still_runs(program, compiler, tmp_path):
    class Crashing(MiscompilingCompiler):
        def run_tasks(self, tasks):
            results = self.real.run_tasks(tasks)
            return [
                Result.failure("crash", "LLVM ERROR: injected") if _defines(t.ir, "clamp") else r
                for t, r in zip(tasks, results, strict=True)
            ]

    campaign = Campaign([parse_pass_list("-O2")], tmp_path, rounds=1)
    result = campaign.check(program, Crashing(compiler))
    crashes = [f for f in result.findings if f.kind == "crash"]
    assert [(f.function, f.passes) for f in crashes] == [("clamp", "-O2")]
    assert result.pairs == len(program.modules) - 1  # clamp left unoptimized, others ran


def test_no_oracle_for_a_program_that_does_not_finish(toolchain, tmp_path, compiler):
    src = tmp_path / "spin.c"
    src.write_text("int main(void) { volatile int x = 0; for (;;) x++; }\n")
    prog = Program(compile_source(src, toolchain), toolchain, name="spin.c", timeout=0.5)
    assert prog.reference is None
    assert prog.check(same_list_everywhere(prog, parse_pass_list("-Oz")), compiler).outcome == (
        NO_ORACLE
    )


def test_runs_report_exit_status_signals_and_timeouts(toolchain, tmp_path):
    src = tmp_path / "p.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 3; }\n')
    run = execute(compile_source(src, toolchain), toolchain)
    assert (run.status, run.code, run.stdout) == ("exit", 3, "hi\n")
    lli = execute(compile_source(src, toolchain), toolchain, runner="lli")
    assert lli.same_as(run)
    assert run_program(["sh", "-c", "kill -SEGV $$"]).describe().startswith("killed by SIGSEGV")
    assert run_program(["sleep", "5"], timeout=0.2).status == "timeout"


def test_program_without_main_is_a_clear_error(toolchain, sample_functions):
    with pytest.raises(InputError, match="defines no main"):
        Program(sample_functions["clamp"], toolchain, name="clamp.ll")


# --------------------------------------------------------------------------- deny list


def test_shipped_denylist_denies_gvn_sink_only():
    deny = load_denylist()
    assert deny.llvm == "19"
    assert not deny.allows(parse_pass_list("-O1 -gvn-sink"))
    assert deny.find(parse_pass_list("-gvn-sink -Oz")).kind == "nondeterministic"
    assert deny.allows(parse_pass_list("-Oz")) and deny.allows(parse_pass_list("-gvn -dse"))


def test_denylist_exact_entries_and_errors():
    deny = parse_denylist(
        json.dumps({"llvm": "19", "entries": [{"passes": "-sroa -gvn", "match": "list"}]})
    )
    assert not deny.allows(parse_pass_list("sroa gvn"))
    assert deny.allows(parse_pass_list("-gvn -sroa")) and deny.allows(parse_pass_list("-sroa"))
    with pytest.raises(InputError, match="not valid JSON"):
        parse_denylist("{", name="d.json")
    with pytest.raises(InputError, match="entry 1: match must be"):
        parse_denylist(json.dumps({"entries": [{"passes": "-gvn", "match": "regex"}]}))
    with pytest.raises(InputError, match=r"entry 1: .*no-such-pass"):
        parse_denylist(json.dumps({"entries": [{"passes": "-no-such-pass"}]}))


def test_optimize_skips_denied_proposals(toolchain, sample_ir, sample_functions, compiler):
    from passlm.optimize.pipeline import optimize_ir

    deny = parse_denylist(json.dumps({"entries": [{"passes": "-O1", "match": "list"}]}))
    proposals = [parse_pass_list("-O1")] * len(sample_functions)
    report = optimize_ir(
        sample_ir, toolchain, compiler, proposals, modules=dict(sample_functions), denylist=deny
    )
    assert all(f.passes == "-Oz" and f.compiles == 0 for f in report.functions)
    assert all("denied" in f.note for f in report.functions)
    allowed = optimize_ir(sample_ir, toolchain, compiler, proposals, modules=dict(sample_functions))
    assert all(f.compiles == 1 for f in allowed.functions)


# --------------------------------------------------------------------------- commands


@pytest.mark.slow
def test_verify_command_on_a_program(tmp_path):
    out = tmp_path / "v"
    res = run_passlm(
        "verify", str(FIXTURES / "sample.c"), "--passes", "-O2", "-o", str(out), "-j", "1"
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["with_oracle"] == 1 and summary["pairs"] == 8 and summary["miscompiles"] == []
    bad = run_passlm("verify", str(FIXTURES / "sample.c"), "-o", str(out))
    assert bad.returncode == 2 and "name the lists" in bad.stderr


@pytest.mark.slow
def test_optimize_verify_writes_a_checked_per_function_module(tmp_path, toolchain):
    out = tmp_path / "sample.ll"
    res = run_passlm(
        "optimize", str(FIXTURES / "sample.c"), "--no-model", "--verify", "-o", str(out), "-j", "1"
    )
    assert res.returncode == 0, res.stderr
    said = " ".join(res.stderr.split())  # rich wraps lines at the pipe's 80 columns
    assert "verify: same output" in said
    # inlining and deleting the static clamp() make whole-module -Oz smaller here
    assert "98 with whole-module -Oz, 102 with the per-function lists" in said
    assert "written: whole-module -Oz (98 instructions)" in said
    assert execute(out.read_text(), toolchain).stdout.startswith(EXPECTED)
    no_main = run_passlm("optimize", str(FIXTURES / "sample.cpp"), "--no-model", "--verify")
    assert no_main.returncode == 2 and "needs a program with a main" in no_main.stderr


@pytest.mark.slow
def test_optimize_verifies_ll_and_bc_inputs_with_every_strategy(tmp_path, toolchain, sample_ir):
    import subprocess

    ll = tmp_path / "sample.ll"
    ll.write_text(sample_ir)
    bc = tmp_path / "sample.bc"
    subprocess.run([toolchain.llvm_as, str(ll), "-o", str(bc)], check=True)
    for source, strategy in ((ll, "predict"), (bc, "sample-3"), (bc, "oz-backup")):
        out = tmp_path / f"out-{strategy}.ll"
        res = run_passlm(
            "optimize", str(source), "-s", strategy, "--verify", "-o", str(out), "-j", "1"
        )
        assert res.returncode == 0, res.stderr
        assert "verify: same output" in " ".join(res.stderr.split())
        assert execute(out.read_text(), toolchain).stdout.startswith(EXPECTED)
    bad = run_passlm("optimize", str(ll), "-s", "sample-0")
    assert bad.returncode == 2 and "sample-N needs 1 <= N" in bad.stderr
    bad = run_passlm("optimize", str(ll), "-s", "best")
    assert bad.returncode == 2 and "unknown strategy 'best'" in bad.stderr


def test_optimize_verify_catches_a_miscompile_and_offers_oz(
    toolchain, sample_ir, sample_functions, compiler, tmp_path, monkeypatch
):
    from passlm.optimize.checked import verify_optimized
    from passlm.optimize.pipeline import PER_FUNCTION, optimize_ir

    monkeypatch.chdir(tmp_path)  # the reproducer goes to the working directory
    bad = MiscompilingCompiler(compiler)
    lists = [[parse_pass_list("-sroa -gvn -dse")]] * len(sample_functions)
    report = optimize_ir(
        sample_ir, toolchain, bad, lists, modules=dict(sample_functions), predict=True
    )
    assert report.output_kind == PER_FUNCTION
    verdict = verify_optimized(
        sample_ir, toolchain, dict(sample_functions), report, tmp_path / "s.c"
    )
    assert not verdict.ok and "71" in verdict.detail
    assert verdict.fallback_ir == report.oz_module_ir
    assert execute(verdict.fallback_ir, toolchain).stdout.startswith(EXPECTED)
    repro = tmp_path / verdict.reproducer
    assert json.loads((repro / "lists.json").read_text())["classify"] == "-sroa -gvn -dse"
    assert (repro / "expected.txt").read_text().startswith(EXPECTED)


def test_a_running_program_dies_with_a_killed_parent(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    pidfile = tmp_path / "pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", "from passlm.verify.differential import run_program; "
         f"run_program(['sh', '-c', 'echo $$ > {pidfile}; exec sleep 60'], timeout=120)"],
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    parent.send_signal(signal.SIGKILL)  # no clean-up code can run in the parent
    parent.wait()
    deadline = time.monotonic() + 10
    stat = Path(f"/proc/{child}/stat")
    while time.monotonic() < deadline:
        try:
            if stat.read_text().split(")")[-1].split()[0] == "Z":  # dead, not yet reaped
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the program outlived its killed parent")
