"""Shared fixtures: the real LLVM 19 toolchain and small real IR inputs."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from passlm.llvm import ir as irmod
from passlm.llvm.toolchain import Toolchain, default_toolchain

FIXTURES = Path(__file__).parent / "fixtures"
BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


def benchmark_module(name: str):
    """``benchmarks/NAME.py`` loaded as a module (the scripts are not a package), with their
    directory on ``sys.path`` as when one runs, so that they import each other."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def passlm_cmd(*args: str) -> list[str]:
    """The command line running ``passlm ARGS`` with this interpreter."""
    return [sys.executable, "-m", "passlm.cli", *args]


def run_passlm(
    *args: str, cwd: Path | None = None, preexec_fn=None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``passlm ARGS`` to completion (wide console, so rich does not wrap); ``env``: more
    environment variables."""
    return subprocess.run(
        passlm_cmd(*args),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=cwd,
        preexec_fn=preexec_fn,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def file_size_limit(limit: int):
    """A ``preexec_fn`` standing in for a full disk: writes past ``limit`` bytes fail (EFBIG)."""

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    return default_toolchain()


@pytest.fixture(scope="session")
def sample_ir(toolchain: Toolchain) -> str:
    """Unoptimized IR of tests/fixtures/sample.c (8 functions)."""
    return irmod.compile_source(FIXTURES / "sample.c", toolchain)


@pytest.fixture(scope="session")
def sample_functions(sample_ir: str, toolchain: Toolchain) -> dict[str, str]:
    """sample.c split into normalized one-function modules."""
    return irmod.split_functions(sample_ir, toolchain)


@pytest.fixture
def one_thread():
    """Torch on one thread: the test machine's cores are shared, and CPU runs reproduce."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
