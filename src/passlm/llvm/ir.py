"""LLVM IR as text: produce it from C/C++, load it, normalize it, split it, hash and count it.

The functions here work on IR *text* so that every layer above (corpus, data set, model) shares
one representation. Anything that needs LLVM's parser goes through the tools of a
:class:`~passlm.llvm.toolchain.Toolchain` or through :mod:`passlm.llvm.native`.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

from passlm.errors import CommandFailed, InputError, InvalidIR, SourceCompileError
from passlm.llvm.toolchain import Toolchain
from passlm.process import first_error_line, run_command

# How unoptimized IR is produced. -O0 alone marks every function `optnone`, which no pass
# touches; -disable-O0-optnone removes that but keeps `noinline` (harmless once each function
# is its own module). Recorded in every artifact.
IR_RECIPE = "clang -O0 -Xclang -disable-O0-optnone -emit-llvm -S"
_CLANG_FLAGS = ("-O0", "-Xclang", "-disable-O0-optnone", "-emit-llvm", "-S", "-w")

C_SUFFIXES = {".c"}
CXX_SUFFIXES = {".cc", ".cpp", ".cxx", ".c++", ".C"}
IR_SUFFIXES = {".ll"}
BITCODE_SUFFIXES = {".bc"}

COMPILE_TIMEOUT = 120.0


# --------------------------------------------------------------------------- loading


def _check_input_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file")


def compile_source(
    path: str | Path,
    toolchain: Toolchain,
    flags: tuple[str, ...] = (),
    *,
    timeout: float = COMPILE_TIMEOUT,
) -> str:
    """Compile a C or C++ file to unoptimized IR text (see :data:`IR_RECIPE`)."""
    path = Path(path)
    _check_input_file(path)
    if path.suffix in C_SUFFIXES:
        compiler = toolchain.clang
    elif path.suffix in CXX_SUFFIXES:
        compiler = toolchain.clangxx
    else:
        raise InputError(f"{path}: not a C/C++ source file (expected one of .c .cc .cpp .cxx)")
    try:
        out = run_command([compiler, *_CLANG_FLAGS, *flags, "-o", "-", str(path)], timeout=timeout)
    except CommandFailed as exc:
        raise SourceCompileError(f"{path}: does not compile: {exc.detail}") from None
    return out.text


def load_ir(path: str | Path, toolchain: Toolchain) -> str:
    """Read IR from ``path``: ``.ll`` text, ``.bc`` bitcode, or C/C++ source (compiled)."""
    path = Path(path)
    _check_input_file(path)
    if path.suffix in C_SUFFIXES | CXX_SUFFIXES:
        return compile_source(path, toolchain)
    if path.suffix in BITCODE_SUFFIXES:
        try:
            text = run_command([toolchain.llvm_dis, "-o", "-", str(path)], timeout=60).text
        except CommandFailed as exc:
            raise InvalidIR(f"{path}: not valid LLVM bitcode: {parse_error(exc.stderr)}") from None
    elif path.suffix in IR_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise InvalidIR(
                f"{path}: not UTF-8 text; is it bitcode? (use the .bc suffix)"
            ) from None
    else:
        raise InputError(f"{path}: unsupported input (expected .c, .cc, .cpp, .ll or .bc)")
    verify_ir(text, toolchain, name=str(path))
    return text


def verify_ir(ir: str, toolchain: Toolchain, *, name: str = "input") -> None:
    """Raise :class:`InvalidIR` naming ``name`` and the first problem if ``ir`` is not valid.

    Runs ``opt`` in a child process, so malformed input can never take the caller down.
    """
    try:
        run_command(
            [toolchain.opt, "-passes=verify", "-disable-output", "-"],
            input=ir.encode("utf-8"),
            timeout=COMPILE_TIMEOUT,
        )
    except CommandFailed as exc:
        lines = [ln.strip() for ln in exc.stderr.splitlines() if ln.strip()]
        first = parse_error(exc.stderr).replace("<stdin>:", "line ", 1)
        if "input module is broken" in first and lines:
            # the verifier prints its complaint, then the offending instructions
            detail = "; ".join(lines[:2])
            first = f"does not verify: {detail}"
        raise InvalidIR(f"{name}: {first}") from None


# --------------------------------------------------------------------------- normalization

_ATTR_REF = re.compile(r"\s#\d+\b")
_DBG_ATTACHMENT = re.compile(r",?\s*!dbg\s+!\d+")
_SPACES = re.compile(r"[ \t]+")
_METADATA_REF = re.compile(r"!(\d+)\b")
_METADATA_DEF = re.compile(r"^!(\d+) = ")
_DROPPED_LINE_PREFIXES = (
    "source_filename",
    "attributes #",
    "!llvm.ident",
    "!llvm.module.flags",
    "!llvm.dbg.",
    "#dbg_",
)


def _split_quoted(line: str) -> list[str]:
    """Split a line into alternating code / quoted-string parts (even = code).

    LLVM IR escapes a quote inside a string as ``\\22``, so every ``"`` delimits a string.
    """
    return line.split('"')


def _clean_line(line: str) -> str:
    parts = _split_quoted(line)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # inside a string: kept verbatim
            out.append(part)
            continue
        cut = part.find(";")
        code = part if cut < 0 else part[:cut]
        code = _DBG_ATTACHMENT.sub("", _ATTR_REF.sub("", code))
        out.append(_SPACES.sub(" ", code))
        if cut >= 0:  # a comment runs to the end of the line
            break
    return '"'.join(out).strip()


def _drop_unreachable_metadata(lines: list[str]) -> list[str]:
    """Remove numbered metadata nodes no longer referenced (e.g. debug info, llvm.ident)."""
    defs: dict[str, str] = {}
    for ln in lines:
        m = _METADATA_DEF.match(ln)
        if m:
            defs[m.group(1)] = ln
    if not defs:
        return lines

    def refs(text: str) -> set[str]:
        found = set()
        for i, part in enumerate(_split_quoted(text)):
            if i % 2 == 0:
                found.update(_METADATA_REF.findall(part))
        return found

    live: set[str] = set()
    todo = [r for ln in lines if not _METADATA_DEF.match(ln) for r in refs(ln)]
    while todo:
        node = todo.pop()
        if node in live or node not in defs:
            continue
        live.add(node)
        todo.extend(refs(defs[node].split(" = ", 1)[1]))
    return [ln for ln in lines if not (m := _METADATA_DEF.match(ln)) or m.group(1) in live]


def normalize(ir: str) -> str:
    """Normalize IR text as the paper does (§II-B).

    Drops comments, debug metadata and debug intrinsics, attribute groups and their uses,
    ``source_filename``, ``llvm.ident`` and module flags, and blank lines; strips indentation
    and collapses runs of spaces outside strings. Non-debug metadata (loop hints) is kept.
    The result is deterministic, idempotent and still parses.
    """
    out: list[str] = []
    for raw in ir.splitlines():
        if raw.lstrip().startswith(_DROPPED_LINE_PREFIXES):
            continue
        line = _clean_line(raw)
        if not line:
            continue
        if "@llvm.dbg." in line and (line.startswith("call ") or line.startswith("declare ")):
            continue
        out.append(line)
    return "\n".join(_drop_unreachable_metadata(out)) + "\n"


def content_hash(ir: str) -> str:
    """A stable identifier of IR text: the SHA-256 of its normalized form (32 hex digits)."""
    return hashlib.sha256(normalize(ir).encode("utf-8")).hexdigest()[:32]


# --------------------------------------------------------------------------- structure

_DEFINE = re.compile(r'^define\b[^@]*@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)\(')
_LABEL = re.compile(r'^(?:[-a-zA-Z$._0-9]+|"[^"]*"):\s*(?:;.*)?$')
_CLAUSE_PREFIXES = ("cleanup", "catch ", "filter ")


def defined_functions(ir: str) -> list[str]:
    """Names of the functions *defined* (not just declared) in IR text, in order."""
    names = []
    for line in ir.splitlines():
        m = _DEFINE.match(line.lstrip())
        if m:
            name = m.group(1)
            names.append(name[1:-1] if name.startswith('"') else name)
    return names


def count_instructions(ir: str) -> int:
    """Instructions in all defined functions, as LLVM's ``instcount`` totals them.

    Works on text printed by LLVM (raw or normalized): labels, ``switch`` case lines, landing
    pad clauses and debug records are not instructions.
    """
    count = 0
    in_body = in_cases = False
    for raw in ir.splitlines():
        line = raw.strip()
        if not in_body:
            in_body = line.startswith("define ") and line.endswith("{")
            continue
        if line == "}":
            in_body = False
        elif in_cases:
            in_cases = not line.startswith("]")
        elif (
            not line
            or line.startswith(";")
            or _LABEL.match(line)
            or line.startswith(_CLAUSE_PREFIXES)
            or line.startswith(("#dbg_", "uselistorder"))
        ):
            continue
        else:
            count += 1
            in_cases = line.endswith("[")
    return count


def split_functions(ir: str, toolchain: Toolchain, *, timeout: float = 60.0) -> dict[str, str]:
    """Split a module into one normalized module per defined function.

    Each module keeps the declarations and globals its function uses (``llvm-extract``). Returns
    ``{function name: normalized IR}`` in the order the functions appear.
    """
    names = defined_functions(ir)
    if not names:
        raise InvalidIR("the module defines no functions")
    data = ir.encode("utf-8")
    return {name: extract_function(data, name, toolchain, timeout=timeout) for name in names}


def extract_function(
    ir: str | bytes, name: str, toolchain: Toolchain, *, timeout: float = 60.0
) -> str:
    """The normalized module of one defined function ``name`` (``llvm-extract``).

    Raises :class:`InvalidIR` when it cannot be extracted and
    :class:`~passlm.errors.CommandTimeout` past ``timeout`` seconds.
    """
    data = ir.encode("utf-8") if isinstance(ir, str) else ir
    try:
        out = run_command(
            [toolchain.llvm_extract, f"--func={name}", "-S", "-o", "-", "-"],
            input=data,
            timeout=timeout,
        )
    except CommandFailed as exc:
        raise InvalidIR(f"cannot extract function {name}: {exc.detail}") from None
    return normalize(out.text)


_FEATURE_ASSIGNED = re.compile(
    r"^(?:%[-\w.$\"]+|%\d+)\s*=\s*(?:(?:tail|musttail|notail)\s+)?([a-z]+)"
)
_FEATURE_UNASSIGNED = re.compile(r"^(?:(?:tail|musttail|notail)\s+)?([a-z]+)\b")
_FEATURE_LABEL = re.compile(r'^(?:[-\w.$]+|"[^"]*"):')


def ir_features(ir: str) -> Counter[str]:
    """Counts describing a function's IR: opcodes, basic blocks, calls, arguments, size."""
    feats: Counter[str] = Counter()
    in_body = False
    for raw in ir.splitlines():
        line = raw.strip()
        if not in_body:
            if line.startswith("define ") and line.endswith("{"):
                in_body = True
                feats["args"] += line.count(", ") + (0 if "()" in line else 1)
            elif line.startswith("@"):
                feats["globals"] += 1
            elif line.startswith("declare "):
                feats["declared"] += 1
            continue
        if line == "}":
            in_body = False
            continue
        if not line or line.startswith(";"):
            continue
        if _FEATURE_LABEL.match(line):
            feats["blocks"] += 1
            continue
        m = _FEATURE_ASSIGNED.match(line) or _FEATURE_UNASSIGNED.match(line)
        if m:
            feats[f"op:{m.group(1)}"] += 1
            feats["instructions"] += 1
    feats["blocks"] += 1  # the entry block has no label in normalized IR
    return feats


def parse_error(stderr: bytes | str) -> str:
    """The first error line of an LLVM tool's stderr, without the tool-name prefix."""
    line = first_error_line(stderr)
    return re.sub(r"^\S*(opt|llvm-\w+)(-\d+)?: ", "", line)
