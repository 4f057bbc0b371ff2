"""Find the tools and the shared library of one LLVM version, once.

Everything else receives a :class:`Toolchain`; nothing else looks on ``PATH``. Each tool can be
overridden by an environment variable (``PASSLM_OPT=/path/to/opt``), and all of them at once by
``PASSLM_LLVM_BIN`` (a directory holding unsuffixed or ``-19``-suffixed tools).
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from passlm.errors import ToolNotFound
from passlm.process import run_command

LLVM_MAJOR = 19

# tool field -> (base name, Debian package that ships it)
_TOOLS: dict[str, tuple[str, str]] = {
    "clang": ("clang", "clang-19"),
    "clangxx": ("clang++", "clang-19"),
    "opt": ("opt", "llvm-19"),
    "llvm_extract": ("llvm-extract", "llvm-19"),
    "llvm_link": ("llvm-link", "llvm-19"),
    "llvm_dis": ("llvm-dis", "llvm-19"),
    "llvm_as": ("llvm-as", "llvm-19"),
    "llc": ("llc", "llvm-19"),
    "llvm_size": ("llvm-size", "llvm-19"),
    "lli": ("lli", "llvm-19-runtime"),
}

_LIB_GLOBS = (
    "/usr/lib/llvm-{v}/lib/libLLVM.so.{v}*",
    "/usr/lib/llvm-{v}/lib/libLLVM-{v}.so",
    "/usr/lib/*-linux-gnu/libLLVM.so.{v}*",
    "/usr/lib/*-linux-gnu/libLLVM-{v}.so*",
    "/usr/local/lib/libLLVM.so.{v}*",
    "/usr/local/lib/libLLVM-{v}.so",
)


def _env_name(field: str) -> str:
    return "PASSLM_" + field.upper()


@dataclass(frozen=True)
class Toolchain:
    """Absolute paths of one LLVM version's tools and ``libLLVM`` shared library."""

    clang: str
    clangxx: str
    opt: str
    llvm_extract: str
    llvm_link: str
    llvm_dis: str
    llvm_as: str
    llc: str
    llvm_size: str
    lli: str
    libllvm: str
    version: str  # full version reported by opt, e.g. "19.1.7"

    @property
    def major(self) -> int:
        """The major version number (19)."""
        return int(self.version.split(".")[0])


def _find_tool(field: str, major: int) -> str:
    base, package = _TOOLS[field]
    override = os.environ.get(_env_name(field))
    if override:
        path = shutil.which(override)
        if path is None:
            raise ToolNotFound(f"{_env_name(field)}={override} is not an executable file")
        return path
    candidates = [f"{base}-{major}", base]
    bindir = os.environ.get("PASSLM_LLVM_BIN")
    search_dirs = [bindir] if bindir else [None, f"/usr/lib/llvm-{major}/bin"]
    for directory in search_dirs:
        for name in candidates:
            path = shutil.which(name, path=directory)
            if path is not None:
                return path
    raise ToolNotFound(
        f"{base}-{major} not found: install it with `apt-get install -y {package}` "
        f"or point {_env_name(field)} at it"
    )


def _find_libllvm(major: int) -> str:
    override = os.environ.get("PASSLM_LIBLLVM")
    if override:
        if not Path(override).is_file():
            raise ToolNotFound(f"PASSLM_LIBLLVM={override} is not a file")
        return override
    for pattern in _LIB_GLOBS:
        hits = sorted(glob.glob(pattern.format(v=major)))
        if hits:
            return os.path.realpath(hits[0])
    raise ToolNotFound(
        f"libLLVM {major} shared library not found: install it with "
        f"`apt-get install -y libllvm{major}` or point PASSLM_LIBLLVM at it"
    )


def _tool_version(opt: str) -> str:
    out = run_command([opt, "--version"], timeout=30).text
    m = re.search(r"LLVM version (\d+\.\d+\.\d+)", out)
    if not m:
        raise ToolNotFound(f"cannot read the LLVM version from `{opt} --version`")
    return m.group(1)


def find_toolchain(major: int = LLVM_MAJOR) -> Toolchain:
    """Locate every tool of LLVM ``major`` and check that opt reports that version."""
    paths = {f.name: _find_tool(f.name, major) for f in fields(Toolchain) if f.name in _TOOLS}
    version = _tool_version(paths["opt"])
    if int(version.split(".")[0]) != major:
        raise ToolNotFound(f"{paths['opt']} is LLVM {version}, passlm needs LLVM {major}")
    return Toolchain(**paths, libllvm=_find_libllvm(major), version=version)


@functools.cache
def default_toolchain() -> Toolchain:
    """The toolchain found from the environment, looked up once per process."""
    return find_toolchain()
