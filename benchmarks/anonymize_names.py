"""Prompts with the names of globals, callees and struct types anonymized: an experiment.

The corpus IR numbers its local values already (clang discards value names), but a prompt
still carries the names of the module's globals, the functions it calls and its struct types.
The shipped tokenizer learned the training code bases' names as whole tokens: on val and test
they are 5-7.5% of a prompt's tokens, on the held-out and unseen code bases 22-23%, split into
pieces. This script rewrites a data set's prompts (``dataset``) or a ``device_samples.py``
prompts file (``prompts``) with every such name replaced by one numbered in order of first
use (``@g0``, ``%struct.T0``), so that a model fine-tuned on the one reads the other alike.
Library functions (the names in LLVM's ``TargetLibraryInfo.def``, which passes recognize) and
intrinsics keep their names. Only prompts change: the functions are compiled from their own IR,
so counts do not. Answers must not carry IR (``dataset make --no-aux``), whose names would not
match.

    .venv/bin/python benchmarks/anonymize_names.py dataset IN.parquet OUT.parquet
    .venv/bin/python benchmarks/anonymize_names.py prompts IN.jsonl.gz OUT.jsonl.gz
"""

from __future__ import annotations

import argparse
import re
from dataclasses import replace
from pathlib import Path

from passlm.errors import InputError
from passlm.files import read_jsonl_gz, write_jsonl_gz

LIBRARY_NAMES = Path("/usr/lib/llvm-19/include/llvm/Analysis/TargetLibraryInfo.def")
_LIBRARY = re.compile(r'TLI_DEFINE_STRING_INTERNAL\("([^"]*)"\)')
_GLOBAL = re.compile(r'@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._][-a-zA-Z$._0-9]*)')
_TYPE = re.compile(
    r'%("(?:struct|union|class)\.(?:[^"\\]|\\.)*"|(?:struct|union|class)\.[-a-zA-Z$._0-9]+)'
)


def library_names(path: Path = LIBRARY_NAMES) -> frozenset[str]:
    """The library functions LLVM 19 knows by name."""
    try:
        names = frozenset(_LIBRARY.findall(path.read_text()))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror} (it comes with llvm-19-dev)") from None
    if not names:
        raise InputError(f"{path}: no library function names found")
    return names


def anonymize(ir: str, keep: frozenset[str]) -> str:
    """``ir`` with global and struct-type names renumbered in order of first use; the names in
    ``keep`` and ``llvm.*`` intrinsics left as they are."""
    names: dict[str, str] = {}
    types: dict[str, str] = {}

    def global_name(m: re.Match) -> str:
        bare = m.group(1).strip('"')
        if bare in keep or bare.startswith("llvm."):
            return m.group(0)
        return "@" + names.setdefault(m.group(1), f"g{len(names)}")

    def type_name(m: re.Match) -> str:
        kind = m.group(1).strip('"').split(".", 1)[0]
        return "%" + types.setdefault(m.group(1), f"{kind}.T{len(types)}")

    return _TYPE.sub(type_name, _GLOBAL.sub(global_name, ir))


def _prompt(prompt: str, keep: frozenset[str]) -> str:
    from passlm.data.format import parse_prompt, render_prompt

    return render_prompt(anonymize(parse_prompt(prompt), keep))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("dataset", "prompts"))
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    if args.kind == "dataset":
        from passlm.data.dataset import read_dataset, write_dataset

        examples, meta = read_dataset(args.input)
        if meta.get("aux", True):
            raise InputError(f"{args.input}: its answers carry IR; make it with --no-aux")
        keep = library_names()
        out = [replace(e, prompt=_prompt(e.prompt, keep)) for e in examples]
        write_dataset(args.output, out, {**meta, "anonymized_names": True})
        print(f"wrote {args.output}: {len(out)} examples")
        return
    rows = read_jsonl_gz(args.input)
    keep = library_names()
    for r in rows:
        if r.get("prompt") is not None:
            r["prompt"] = _prompt(r["prompt"], keep)
    write_jsonl_gz(args.output, rows)
    print(f"wrote {args.output}: {len(rows)} prompts")


if __name__ == "__main__":
    from passlm.cli import report_errors

    report_errors(main)
