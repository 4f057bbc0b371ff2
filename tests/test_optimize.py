"""``passlm optimize``: per-function output, a real LLVM crash, and batch mode's faults."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from passlm.llvm.ir import load_ir, split_functions
from passlm.llvm.passes import parse_pass_list
from passlm.llvm.pool import WorkerPool
from passlm.optimize.pipeline import optimize_ir

from .conftest import FIXTURES, file_size_limit, passlm_cmd
from .conftest import run_passlm as run

CRASHING = "-jump-table-to-switch -licm -instcombine -loop-bound-split"  # SIGSEGV in LLVM 19


def test_a_proposal_that_crashes_llvm_falls_back_to_oz(toolchain):
    ir = load_ir(FIXTURES / "crash-loop-bound-split.ll", toolchain)
    modules = split_functions(ir, toolchain)
    with WorkerPool(toolchain, workers=1) as pool:
        report = optimize_ir(
            ir, toolchain, pool, [parse_pass_list(CRASHING)] * len(modules), modules=modules
        )
        assert pool.restarts == 1  # the crash took a worker down, not us
    (f,) = report.functions
    assert f.passes == "-Oz" and f.count == f.oz_count and f.compiles == 1
    assert f"failed to compile: {CRASHING} (crash)" in f.note


def _inputs(root: Path, copies: int = 0) -> Path:
    src = root / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a_tiny.c").write_text("int twice(int x) { return x + x; }\n")
    shutil.copy(FIXTURES / "sample.c", src / "sample.c")
    shutil.copy(FIXTURES / "sample.cpp", src / "sub" / "sample.cpp")
    shutil.copy(FIXTURES / "broken.c", src / "broken.c")
    (src / "notes.txt").write_text("not an input\n")
    for i in range(copies):
        shutil.copy(FIXTURES / "sample.c", src / f"copy{i:02d}.c")
    return src


def _partial_files(out: Path) -> list[str]:
    """Temporary files, or outputs without their report (a file half done)."""
    bad = [str(p) for p in out.rglob("*.tmp")]
    for module in out.rglob("*.ll"):
        if not module.with_suffix(".json").is_file():
            bad.append(str(module))
    return bad


@pytest.mark.slow
def test_batch_mode_writes_each_file_resumes_and_retries_failures(tmp_path):
    src = _inputs(tmp_path)
    ll = tmp_path / "in" / "sub" / "sample.ll"
    ll.write_text((FIXTURES / "crash-loop-bound-split.ll").read_text())
    out = tmp_path / "out"
    res = run("optimize", str(src), "-o", str(out), "--no-model", "-j", "1")
    assert res.returncode == 1, res.stderr  # broken.c failed, the rest went on
    assert "broken.c: does not compile" in res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files"], summary["optimized"], summary["failed"]) == (5, 4, 1)
    assert list(summary["failures"]) == ["broken.c"]
    for rel in ("a_tiny.c", "sample.c", "sub/sample.cpp", "sub/sample.ll"):
        record = json.loads((out / f"{rel}.json").read_text())
        assert record["source"] == rel
        assert record["module_written"] == min(record["module_oz"], record["module_per_function"])
        assert "\ntarget triple" in (out / f"{rel}.ll").read_text()
    stamp = (out / "sample.c.ll").stat().st_mtime_ns
    (src / "broken.c").write_text("int fixed(void) { return 1; }\n")
    again = run("optimize", str(src), "-o", str(out), "--no-model", "-j", "1")
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done_before"], summary["optimized"], summary["failed"]) == (4, 1, 0)
    assert (out / "sample.c.ll").stat().st_mtime_ns == stamp  # not redone
    bad = run("optimize", str(src), "--no-model")
    assert bad.returncode == 2 and "needs -o OUTPUT_DIRECTORY" in bad.stderr


@pytest.mark.slow
def test_batch_sigterm_leaves_no_partial_files_and_resumes(tmp_path):
    src = _inputs(tmp_path, copies=12)
    (src / "broken.c").unlink()
    out = tmp_path / "out"
    proc = subprocess.Popen(
        passlm_cmd("optimize", str(src), "-o", str(out), "--no-model", "-j", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("*.json"))) < 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert _partial_files(out) == []
    done = len(list(out.rglob("*.c.json")))
    assert 2 <= done < 15
    again = run("optimize", str(src), "-o", str(out), "--no-model", "-j", "1")
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["done_before"] >= done and summary["files"] == 15 and summary["failed"] == 0


@pytest.mark.slow
def test_batch_full_disk_is_one_line_and_keeps_finished_files(tmp_path):
    src = _inputs(tmp_path)
    (src / "broken.c").unlink()
    stores = "\n".join(f"  p[{i}] = {i * 7 + 1};" for i in range(2000))
    (src / "big.c").write_text(f"void big(volatile int *p) {{\n{stores}\n}}\n")
    out = tmp_path / "out"
    # a 32 KiB file-size limit stands in for a full disk: a_tiny.c's outputs fit, big.c's
    # ~100 KB module (the first file in order) does not
    res = run(
        "optimize", str(src), "-o", str(out), "--no-model", "-j", "1",
        preexec_fn=file_size_limit(32 * 1024),
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "error: file system:" in res.stderr and "File too large" in res.stderr
    assert "Traceback" not in res.stderr
    assert _partial_files(out) == []
    assert (out / "a_tiny.c.json").is_file() and not (out / "big.c.ll").exists()
    again = run("optimize", str(src), "-o", str(out), "--no-model", "-j", "1")
    assert again.returncode == 0, again.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["done_before"], summary["optimized"]) == (1, 3)


@pytest.mark.slow
def test_emit_kinds_and_text_size(tmp_path, toolchain):
    from passlm.llvm.emit import text_size

    for suffix, magic in ((".o", b"\x7fELF"), (".bc", b"BC\xc0\xde"), (".ll", b"target")):
        out = tmp_path / f"s{suffix}"
        res = run("optimize", str(FIXTURES / "sample.c"), "--no-model", "-o", str(out), "-j", "1")
        assert res.returncode == 0, res.stderr
        assert out.read_bytes().startswith(magic), suffix
        assert "object .text:" in res.stderr
    ir = (tmp_path / "s.ll").read_text()
    assert 0 < text_size(ir, toolchain) < 2000
    bad = run("optimize", str(FIXTURES / "sample.c"), "--no-model", "--emit", "exe")
    assert bad.returncode == 2 and "--emit: expected one of ll, bc, obj" in bad.stderr


def test_a_model_trained_on_the_oz_summary_reads_it_in_one_line(toolchain):
    """model_prompts gives a model of the summary kind -Oz's count and make-up, not its IR."""
    from passlm.data import format as fmt
    from passlm.llvm.backend import InProcessCompiler
    from passlm.llvm.names import NAMES_KEPT
    from passlm.model import default_model_dir, load
    from passlm.optimize.prompts import model_prompts, oz_contexts

    model, tok = load(default_model_dir())
    model.passlm_prompt, model.passlm_names = fmt.PROMPT_OZ_SUMMARY, NAMES_KEPT
    ir = next(iter(split_functions(load_ir(FIXTURES / "sample.c", toolchain), toolchain).values()))
    with InProcessCompiler(toolchain) as c:
        (context,) = oz_contexts([ir], c)
        (prompt,) = model_prompts(model, [ir], c, tok)
    assert prompt == fmt.render_prompt(ir, context, fmt.PROMPT_OZ_SUMMARY)
    assert prompt.count("\n") == fmt.render_prompt(ir).count("\n") + 1


def test_a_model_trained_with_names_anonymized_reads_them_so(toolchain):
    """model_prompts renames the function and its -Oz context alike for such a model, and
    model_renaming is what its optimized IR is compared through."""
    from passlm.data import format as fmt
    from passlm.llvm.backend import InProcessCompiler
    from passlm.llvm.names import NAMES_ANONYMIZED, NAMES_KEPT, Renaming, anonymize
    from passlm.model import default_model_dir, load
    from passlm.optimize.prompts import model_prompts, model_renaming, oz_contexts

    model, tok = load(default_model_dir())
    assert model.passlm_names == NAMES_ANONYMIZED  # the shipped model, as its passlm.json says
    model.passlm_names = NAMES_KEPT
    irs = list(split_functions(load_ir(FIXTURES / "sample.c", toolchain), toolchain).values())
    assert model_prompts(model, irs) == [fmt.render_prompt(ir) for ir in irs]
    assert model_renaming(model, irs[0])(irs[0]) == irs[0]
    model.passlm_names = NAMES_ANONYMIZED
    assert model_prompts(model, irs) == [fmt.render_prompt(anonymize(ir)) for ir in irs]
    assert model_renaming(model, irs[0])(irs[0]) == anonymize(irs[0])
    model.passlm_prompt = fmt.PROMPT_OZ
    with InProcessCompiler(toolchain) as c:
        contexts = oz_contexts(irs, c)
        prompts = model_prompts(model, irs, c, tok)
    for ir, oz, prompt in zip(irs, contexts, prompts, strict=True):
        renamed = Renaming.of(ir).apply
        assert prompt == fmt.render_prompt(renamed(ir), fmt.OzContext(oz.count, renamed(oz.ir)))
