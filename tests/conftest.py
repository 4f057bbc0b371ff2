"""Shared fixtures: the real LLVM 19 toolchain and small real IR inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from passlm.llvm import ir as irmod
from passlm.llvm.toolchain import Toolchain, default_toolchain

FIXTURES = Path(__file__).parent / "fixtures"


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
