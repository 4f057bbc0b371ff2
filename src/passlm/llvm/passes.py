"""The pass catalogue: the action space of LLVM 19 transform passes and how pass lists render.

Users and the model speak in *pass lists*: pass names plus the O-levels, e.g.
``-mem2reg -instcombine -licm -Oz``. This module owns

* the catalogue (:data:`CATALOGUE`, name -> kind), committed as data and taken from LLVM 19's
  pass registry (``opt-19 --print-passes``), transform passes only;
* the exclusion table (:data:`EXCLUDED`, registry name -> rule in :data:`EXCLUSION_RULES`): every
  other name in the registry, each with the documented reason it is not an action;
* :class:`PassList`, which renders a list as a new-pass-manager pipeline (``opt -passes=...``),
  and :func:`parse_pass_list`, which reads every accepted spelling.

Canonical spelling (what :class:`PassList` holds): passes as bare registry names
(``"instcombine"``), O-levels with a dash (``"-Oz"``). The user-facing form, ``str(pass_list)``,
puts a dash before every pass: ``-mem2reg -instcombine -Oz``.

Parameterized passes (``instcombine<...>``, ``gvn<...>``, ``licm<...>`` ...) are actions under their
base name only. Most render bare, which gives LLVM's defaults; :data:`_RENDER` lists those that
need a parameter to be safe.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from passlm.errors import InvalidPassList, UnknownPass

LLVM_MAJOR = 19  # the catalogue below was taken from `opt-19 --print-passes` (LLVM 19.1.7)

# Pass kinds: the pass manager a pass runs under, which decides its adaptor in a pipeline.
MODULE = "module"  # bare at the top level
CGSCC = "cgscc"  # cgscc(...)
FUNCTION = "function"  # function(...)
LOOP = "loop"  # function(loop(...))
LOOP_MSSA = "loop-mssa"  # function(loop-mssa(...)): passes that require MemorySSA
LOOPNEST = "loopnest"  # function(loop(...)): the loop pass manager runs loop-nest passes too
KINDS = (MODULE, CGSCC, FUNCTION, LOOP, LOOP_MSSA, LOOPNEST)

# The action space: every LLVM 19 transform pass that does something to ordinary C code on the
# host CPU, with its kind. `tests/test_passes.py` checks this table against the installed registry
# and runs every entry alone through opt.
CATALOGUE: dict[str, str] = {
    # Module passes.
    "always-inline": MODULE,
    "attributor": MODULE,
    "attributor-light": MODULE,
    "called-value-propagation": MODULE,
    "canonicalize-aliases": MODULE,
    "constmerge": MODULE,
    "deadargelim": MODULE,
    "elim-avail-extern": MODULE,
    "globaldce": MODULE,
    "globalopt": MODULE,
    "globalsplit": MODULE,
    "hotcoldsplit": MODULE,
    "inferattrs": MODULE,
    "ipsccp": MODULE,
    "iroutliner": MODULE,
    "mergefunc": MODULE,
    "partial-inliner": MODULE,
    "rel-lookup-table-converter": MODULE,
    "rpo-function-attrs": MODULE,
    "strip-dead-prototypes": MODULE,
    # CGSCC passes.
    "argpromotion": CGSCC,
    "attributor-cgscc": CGSCC,
    "attributor-light-cgscc": CGSCC,
    "function-attrs": CGSCC,
    "inline": CGSCC,
    # Function passes.
    "adce": FUNCTION,
    "aggressive-instcombine": FUNCTION,
    "alignment-from-assumptions": FUNCTION,
    "bdce": FUNCTION,
    "break-crit-edges": FUNCTION,
    "callsite-splitting": FUNCTION,
    "consthoist": FUNCTION,
    "constraint-elimination": FUNCTION,
    "correlated-propagation": FUNCTION,
    "dce": FUNCTION,
    "dfa-jump-threading": FUNCTION,
    "div-rem-pairs": FUNCTION,
    "dse": FUNCTION,
    "early-cse": FUNCTION,
    "flatten-cfg": FUNCTION,
    "float2int": FUNCTION,
    "gvn": FUNCTION,
    "gvn-hoist": FUNCTION,
    "gvn-sink": FUNCTION,
    "infer-alignment": FUNCTION,
    "instcombine": FUNCTION,
    "instsimplify": FUNCTION,
    "irce": FUNCTION,
    "jump-table-to-switch": FUNCTION,
    "jump-threading": FUNCTION,
    "lcssa": FUNCTION,
    "libcalls-shrinkwrap": FUNCTION,
    "load-store-vectorizer": FUNCTION,
    "loop-data-prefetch": FUNCTION,
    "loop-distribute": FUNCTION,
    "loop-fusion": FUNCTION,
    "loop-load-elim": FUNCTION,
    "loop-simplify": FUNCTION,
    "loop-unroll": FUNCTION,
    "loop-vectorize": FUNCTION,
    "loop-versioning": FUNCTION,
    "lower-atomic": FUNCTION,
    "lower-constant-intrinsics": FUNCTION,
    "lower-expect": FUNCTION,
    "lower-invoke": FUNCTION,
    "lower-matrix-intrinsics": FUNCTION,
    "lower-switch": FUNCTION,
    "mem2reg": FUNCTION,
    "memcpyopt": FUNCTION,
    "mergeicmps": FUNCTION,
    "mergereturn": FUNCTION,
    "mldst-motion": FUNCTION,
    "nary-reassociate": FUNCTION,
    "newgvn": FUNCTION,
    "partially-inline-libcalls": FUNCTION,
    "reassociate": FUNCTION,
    "reg2mem": FUNCTION,
    "scalarizer": FUNCTION,
    "sccp": FUNCTION,
    "separate-const-offset-from-gep": FUNCTION,
    "simplifycfg": FUNCTION,
    "sink": FUNCTION,
    "slp-vectorizer": FUNCTION,
    "slsr": FUNCTION,
    "speculative-execution": FUNCTION,
    "sroa": FUNCTION,
    "tailcallelim": FUNCTION,
    "vector-combine": FUNCTION,
    # Loop passes. licm and lnicm abort with "LLVM ERROR: LICM requires MemorySSA (loop-mssa)"
    # outside loop-mssa; a pass that does not preserve MemorySSA aborts inside it, so every other
    # loop pass goes in loop(...).
    "canon-freeze": LOOP,
    "indvars": LOOP,
    "licm": LOOP_MSSA,
    "lnicm": LOOP_MSSA,
    "loop-bound-split": LOOP,
    "loop-deletion": LOOP,
    "loop-idiom": LOOP,
    "loop-instsimplify": LOOP,
    "loop-reduce": LOOP,
    "loop-rotate": LOOP,
    "loop-simplifycfg": LOOP,
    "loop-unroll-full": LOOP,
    "loop-versioning-licm": LOOP,
    "simple-loop-unswitch": LOOP,
    # Loop-nest passes.
    "loop-flatten": LOOPNEST,
    "loop-interchange": LOOPNEST,
    "loop-unroll-and-jam": LOOPNEST,
}

# Pipeline text for passes that must not run with their defaults. instcombine in a textual
# pipeline verifies that it reached a fixpoint and aborts the process when it did not.
_RENDER: dict[str, str] = {
    "instcombine": "instcombine<no-verify-fixpoint>",
}

# Why a registry name is not an action: rule -> one-line reason.
EXCLUSION_RULES: dict[str, str] = {
    "analysis": "computes, counts or checks facts (or drops cached analyses); IR unchanged",
    "printer": "prints or draws the IR or an analysis (stdout, .dot files, a graph viewer)",
    "verifier": "verifies IR or analysis invariants and changes nothing",
    "debugging": "test aid: no-op, crash trigger, test-case reducer or debug-info fuzzer",
    "metadata-only": "edits only debug info, metadata, attributes or names, never instructions",
    "instrumentation": "adds sanitizer, coverage, profiling, CFI or stack-protection code",
    "needs-input": "needs a profile, ML model or file a pass list cannot supply",
    "needs-flag": "does nothing unless a separate command-line or compiler flag enables it",
    "lto": "link-time step: needs whole-program summaries or assumes a whole program",
    "language-runtime": "for coroutines, ObjC ARC, OpenMP, GC statepoints or guards, absent in C",
    "other-target": "for GPU, offload, DirectX or hardware-loop targets; no use on a host CPU",
    "codegen": "lowering that llc runs before instruction selection; some segfault in opt",
    "pipeline-wrapper": "runs a whole pre-built pipeline; the O-levels cover that",
    "machine-ir": "machine-IR pass of the code generator; opt cannot run it on LLVM IR",
}

# Every other name `opt-19 --print-passes` lists under a pass section (parameterized names without
# their parameters), with its rule. Names listed under several sections appear once.
EXCLUDED: dict[str, str] = {
    # analysis
    "aa-eval": "analysis",
    "annotation-remarks": "analysis",
    "count-visits": "analysis",
    "instcount": "analysis",
    "invalidate<all>": "analysis",
    "lint": "analysis",
    "pa-eval": "analysis",
    "recompute-globalsaa": "analysis",
    "transform-warning": "analysis",
    # printer
    "dot-callgraph": "printer",
    "dot-cfg": "printer",
    "dot-cfg-only": "printer",
    "dot-ddg": "printer",
    "dot-dom": "printer",
    "dot-dom-only": "printer",
    "dot-post-dom": "printer",
    "dot-post-dom-only": "printer",
    "print": "printer",
    "print-alias-sets": "printer",
    "print-callgraph": "printer",
    "print-callgraph-sccs": "printer",
    "print-cfg-sccs": "printer",
    "print-ir-similarity": "printer",
    "print-lcg": "printer",
    "print-lcg-dot": "printer",
    "print-memderefs": "printer",
    "print-must-be-executed-contexts": "printer",
    "print-mustexecute": "printer",
    "print-predicateinfo": "printer",
    "print-profile-summary": "printer",
    "print-stack-safety": "printer",
    "print<access-info>": "printer",
    "print<assumptions>": "printer",
    "print<block-freq>": "printer",
    "print<branch-prob>": "printer",
    "print<cost-model>": "printer",
    "print<cycles>": "printer",
    "print<da>": "printer",
    "print<ddg>": "printer",
    "print<debug-ata>": "printer",
    "print<delinearization>": "printer",
    "print<demanded-bits>": "printer",
    "print<domfrontier>": "printer",
    "print<domtree>": "printer",
    "print<func-properties>": "printer",
    "print<inline-advisor>": "printer",
    "print<inline-cost>": "printer",
    "print<inliner-size-estimator>": "printer",
    "print<iv-users>": "printer",
    "print<lazy-value-info>": "printer",
    "print<loop-cache-cost>": "printer",
    "print<loopnest>": "printer",
    "print<loops>": "printer",
    "print<memoryssa>": "printer",
    "print<memoryssa-walker>": "printer",
    "print<module-debuginfo>": "printer",
    "print<phi-values>": "printer",
    "print<postdomtree>": "printer",
    "print<regions>": "printer",
    "print<scalar-evolution>": "printer",
    "print<stack-lifetime>": "printer",
    "print<stack-safety-local>": "printer",
    "print<structural-hash>": "printer",
    "print<uniformity>": "printer",
    "view-callgraph": "printer",
    "view-cfg": "printer",
    "view-cfg-only": "printer",
    "view-dom": "printer",
    "view-dom-only": "printer",
    "view-post-dom": "printer",
    "view-post-dom-only": "printer",
    # verifier
    "verify": "verifier",
    "verify<domtree>": "verifier",
    "verify<loops>": "verifier",
    "verify<memoryssa>": "verifier",
    "verify<regions>": "verifier",
    "verify<safepoint-ir>": "verifier",
    "verify<scalar-evolution>": "verifier",
    # debugging
    "check-debugify": "debugging",
    "debugify": "debugging",
    "extract-blocks": "debugging",
    "helloworld": "debugging",
    "loop-extract": "debugging",
    "no-op-cgscc": "debugging",
    "no-op-function": "debugging",
    "no-op-loop": "debugging",
    "no-op-loopnest": "debugging",
    "no-op-module": "debugging",
    "trigger-crash-function": "debugging",
    "trigger-crash-module": "debugging",
    "trigger-verifier-error": "debugging",
    # metadata-only
    "add-discriminators": "metadata-only",
    "annotation2metadata": "metadata-only",
    "declare-to-assign": "metadata-only",
    "inject-tli-mappings": "metadata-only",
    "instnamer": "metadata-only",
    "metarenamer": "metadata-only",
    "name-anon-globals": "metadata-only",
    "redundant-dbg-inst-elim": "metadata-only",
    "strip": "metadata-only",
    "strip-dead-debug-info": "metadata-only",
    "strip-debug-declare": "metadata-only",
    "strip-nondebug": "metadata-only",
    "strip-nonlinetable-debuginfo": "metadata-only",
    "synthetic-counts-propagation": "metadata-only",
    # instrumentation
    "asan": "instrumentation",
    "bounds-checking": "instrumentation",
    "cfguard": "instrumentation",
    "cross-dso-cfi": "instrumentation",
    "ctx-instr-lower": "instrumentation",
    "dfsan": "instrumentation",
    "ee-instrument": "instrumentation",
    "hwasan": "instrumentation",
    "insert-gcov-profiling": "instrumentation",
    "instrorderfile": "instrumentation",
    "instrprof": "instrumentation",
    "jmc-instrumenter": "instrumentation",
    "kcfi": "instrumentation",
    "lower-allow-check": "instrumentation",
    "lowertypetests": "instrumentation",
    "memprof": "instrumentation",
    "memprof-module": "instrumentation",
    "msan": "instrumentation",
    "nsan": "instrumentation",
    "pgo-instr-gen": "instrumentation",
    "poison-checking": "instrumentation",
    "pseudo-probe": "instrumentation",
    "safe-stack": "instrumentation",
    "sancov-module": "instrumentation",
    "sanmd-module": "instrumentation",
    "stack-protector": "instrumentation",
    "tsan": "instrumentation",
    "tsan-module": "instrumentation",
    # needs-input (profiles, ML models, files)
    "cg-profile": "needs-input",
    "chr": "needs-input",  # acts only on profile-hot regions
    "inliner-ml-advisor-release": "needs-input",  # errors: no ML model compiled in
    "loop-sink": "needs-input",  # returns at once without profile data
    "memprof-use": "needs-input",
    "pgo-force-function-attrs": "needs-input",
    "pgo-icall-prom": "needs-input",
    "pgo-instr-use": "needs-input",
    "pgo-memop-opt": "needs-input",  # needs value-profile metadata
    "pseudo-probe-update": "needs-input",
    "rewrite-symbols": "needs-input",  # needs a rewrite map file
    "sample-profile": "needs-input",
    # needs-flag
    "assume-builder": "needs-flag",  # --enable-knowledge-retention
    "assume-simplify": "needs-flag",  # --enable-knowledge-retention
    "forceattrs": "needs-flag",  # --force-attribute
    "move-auto-init": "needs-flag",  # acts on clang -ftrivial-auto-var-init stores only
    # lto
    "embed-bitcode": "lto",
    "function-import": "lto",  # aborts: "-function-import requires -summary-file"
    "internalize": "lto",  # internalize,globaldce deletes every function, main included
    "memprof-context-disambiguation": "lto",
    "wholeprogramdevirt": "lto",
    # language-runtime
    "coro-cleanup": "language-runtime",
    "coro-early": "language-runtime",
    "coro-elide": "language-runtime",
    "coro-split": "language-runtime",
    "gc-lowering": "language-runtime",
    "guard-widening": "language-runtime",
    "loop-predication": "language-runtime",
    "lower-guard-intrinsic": "language-runtime",
    "lower-widenable-condition": "language-runtime",
    "make-guards-explicit": "language-runtime",
    "objc-arc": "language-runtime",
    "objc-arc-apelim": "language-runtime",
    "objc-arc-contract": "language-runtime",
    "objc-arc-expand": "language-runtime",
    "openmp-opt": "language-runtime",
    "openmp-opt-cgscc": "language-runtime",
    "openmp-opt-postlink": "language-runtime",
    "place-safepoints": "language-runtime",
    "rewrite-statepoints-for-gc": "language-runtime",
    "shadow-stack-gc-lowering": "language-runtime",
    "strip-gc-relocates": "language-runtime",
    # other-target
    "dxil-upgrade": "other-target",
    "expand-variadics": "other-target",
    "fix-irreducible": "other-target",
    "hardware-loops": "other-target",
    "hipstdpar-interpose-alloc": "other-target",
    "hipstdpar-select-accelerator-code": "other-target",  # deletes every function on the host
    "infer-address-spaces": "other-target",
    "loop-idiom-vectorize": "other-target",
    "structurizecfg": "other-target",
    "unify-loop-exits": "other-target",
    # codegen
    "atomic-expand": "codegen",
    "callbr-prepare": "codegen",
    "codegenprepare": "codegen",  # segfaults alone in opt-19
    "dwarf-eh-prepare": "codegen",
    "expand-large-div-rem": "codegen",
    "expand-large-fp-convert": "codegen",
    "expand-memcmp": "codegen",
    "global-merge": "codegen",
    "indirectbr-expand": "codegen",
    "interleaved-access": "codegen",
    "interleaved-load-combine": "codegen",
    "lower-emutls": "codegen",
    "lower-global-dtors": "codegen",
    "lower-ifunc": "codegen",
    "pre-isel-intrinsic-lowering": "codegen",
    "scalarize-masked-mem-intrin": "codegen",
    "select-optimize": "codegen",  # segfaults alone in opt-19 on simplified IR
    "sjlj-eh-prepare": "codegen",
    "tlshoist": "codegen",
    "typepromotion": "codegen",
    "wasm-eh-prepare": "codegen",
    "win-eh-prepare": "codegen",
    # pipeline-wrapper
    "function-simplification": "pipeline-wrapper",
    "inliner-wrapper": "pipeline-wrapper",
    "inliner-wrapper-no-mandatory-first": "pipeline-wrapper",
    "module-inline": "pipeline-wrapper",
    "scc-oz-module-inliner": "pipeline-wrapper",
    # machine-ir
    "dead-mi-elimination": "machine-ir",
    "finalize-isel": "machine-ir",
    "localstackalloc": "machine-ir",
    "no-op-machine-function": "machine-ir",
    "phi-node-elimination": "machine-ir",
    "print<live-intervals>": "machine-ir",
    "print<live-vars>": "machine-ir",
    "print<machine-block-freq>": "machine-ir",
    "print<machine-branch-prob>": "machine-ir",
    "print<machine-dom-tree>": "machine-ir",
    "print<machine-loops>": "machine-ir",
    "print<machine-post-dom-tree>": "machine-ir",
    "print<slot-indexes>": "machine-ir",
    "require-all-machine-function-properties": "machine-ir",
    "two-address-instruction": "machine-ir",
}

# O-levels, canonical spelling -> pipeline text. Each may appear at most once in a list.
O_LEVELS: tuple[str, ...] = ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz")
_O_PIPELINE: dict[str, str] = {o: f"default<{o[1:]}>" for o in O_LEVELS}

ACTION_SPACE: tuple[str, ...] = tuple(sorted(CATALOGUE))
ALL_ACTIONS: tuple[str, ...] = ACTION_SPACE + O_LEVELS


def pass_kind(name: str) -> str:
    """The kind of one action (any accepted spelling); O-levels are module pipelines."""
    canonical = _canonical(name)
    return MODULE if canonical in _O_PIPELINE else CATALOGUE[canonical]


def is_valid_pass(name: str) -> bool:
    """Whether ``name`` (any accepted spelling of one pass or O-level) is an action."""
    try:
        _canonical(name)
    except (UnknownPass, InvalidPassList):
        return False
    return True


def render_pass(name: str) -> str:
    """The pipeline text of one action without its adaptor: ``instcombine<no-verify-fixpoint>``."""
    canonical = _canonical(name)
    return _O_PIPELINE.get(canonical) or _RENDER.get(canonical, canonical)


@dataclass
class _Adaptor:
    """An open ``function(...)``, ``cgscc(...)``, ``loop(...)`` or ``loop-mssa(...)`` group."""

    name: str
    items: list[str | _Adaptor] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.name}({','.join(str(item) for item in self.items)})"


def _open(items: list[str | _Adaptor], name: str) -> _Adaptor:
    """The adaptor ``name`` at the end of ``items``, appending a new one unless it is open there."""
    last = items[-1] if items else None
    if not (isinstance(last, _Adaptor) and last.name == name):
        last = _Adaptor(name)
        items.append(last)
    return last


@dataclass(frozen=True)
class PassList:
    """An ordered list of actions in canonical spelling (``"instcombine"``, ``"-Oz"``).

    The empty list is allowed and means "run no passes" (its pipeline is ``""``; a backend only
    counts instructions). :func:`parse_pass_list` is the way to build one from user text.
    """

    passes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        passes = tuple(self.passes)  # accept any sequence, store a tuple
        object.__setattr__(self, "passes", passes)
        for name in passes:
            if name not in CATALOGUE and name not in _O_PIPELINE:
                raise UnknownPass(_unknown_message(name))
        _check_o_levels(passes)

    def pipeline(self) -> str:
        """The ``opt -passes=`` text, consecutive passes of one adaptor kind sharing the adaptor.

        Grouping follows the legacy ``opt -a -b`` pass manager, so ``-mem2reg -instcombine -licm
        -Oz`` renders as
        ``function(mem2reg,instcombine<no-verify-fixpoint>,loop-mssa(licm)),default<Oz>``.
        """
        top: list[str | _Adaptor] = []
        for name in self.passes:
            text = render_pass(name)
            kind = pass_kind(name)
            if kind == MODULE:
                top.append(text)
            elif kind == CGSCC:
                _open(top, "cgscc").items.append(text)
            elif kind == FUNCTION:
                _open(top, "function").items.append(text)
            else:  # loop, loopnest, loop-mssa: a loop adaptor inside a function adaptor
                function = _open(top, "function")
                adaptor = "loop-mssa" if kind == LOOP_MSSA else "loop"
                _open(function.items, adaptor).items.append(text)
        return ",".join(str(item) for item in top)

    def __str__(self) -> str:
        return " ".join(name if name in _O_PIPELINE else f"-{name}" for name in self.passes)

    def __len__(self) -> int:
        return len(self.passes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.passes)


# One token of user text: an optional dash or two, a name, optionally one <parameter> group.
_TOKEN = re.compile(r"-{0,2}([A-Za-z0-9][A-Za-z0-9_.-]*(?:<[^<>]*>)?)")
_O_TOKEN = re.compile(r"-{0,2}(?:default<(O[0-3sz])>|(O[0-3sz]))")
_UNRENDER = {text: name for name, text in _RENDER.items()}


def parse_pass_list(spec: str | Sequence[str]) -> PassList:
    """Read a pass list from any accepted spelling.

    Accepts a string of names separated by whitespace and/or commas, each with or without a
    leading dash (``-instcombine -simplifycfg``, ``instcombine,simplifycfg``), O-levels as
    ``-Oz``, ``Oz`` or ``default<Oz>``, or a sequence of such strings. Raises
    :class:`UnknownPass` for a well-formed name that is not an action and
    :class:`InvalidPassList` for an empty list, a repeated O-level or malformed text.
    """
    if isinstance(spec, str):
        pieces: Iterable[str] = [spec]
    elif isinstance(spec, Iterable):
        pieces = list(spec)
        for piece in pieces:
            if not isinstance(piece, str):
                raise InvalidPassList(f"pass names must be strings, got {type(piece).__name__}")
    else:
        kind = type(spec).__name__
        raise InvalidPassList(f"a pass list is text or a sequence of names, got {kind}")
    tokens = [tok for piece in pieces for tok in re.split(r"[\s,]+", piece) if tok]
    if not tokens:
        raise InvalidPassList("empty pass list: name at least one pass or O-level")
    passes = tuple(_canonical(tok) for tok in tokens)
    _check_o_levels(passes)
    return PassList(passes)


def _canonical(token: str) -> str:
    """The canonical spelling of one token, or UnknownPass / InvalidPassList."""
    o_level = _O_TOKEN.fullmatch(token)
    if o_level:
        return "-" + (o_level.group(1) or o_level.group(2))
    match = _TOKEN.fullmatch(token)
    if not match:
        raise InvalidPassList(
            f"malformed pass name {token!r}: expected names like -instcombine or -Oz"
        )
    name = match.group(1)
    if "<" in name:
        # Only the exact parameters this module renders are accepted, so str() and pipeline()
        # output can be read back; other parameters are not part of the action space.
        if name in _UNRENDER:
            return _UNRENDER[name]
        base = name.split("<", 1)[0]
        if base in CATALOGUE:
            raise InvalidPassList(
                f"pass parameters are not part of the action space: {name!r} (use {base!r})"
            )
        raise UnknownPass(_unknown_message(name))
    if name not in CATALOGUE:
        raise UnknownPass(_unknown_message(name))
    return name


def _unknown_message(name: str) -> str:
    """One line naming an unknown pass, why it is excluded or the closest valid names."""
    rule = EXCLUDED.get(name)
    if rule is not None:
        return f"pass {name!r} is not in the action space ({rule}: {EXCLUSION_RULES[rule]})"
    spelled = list(CATALOGUE) + [o[1:] for o in O_LEVELS]
    close = difflib.get_close_matches(name.lstrip("-"), spelled, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see passlm.llvm.passes.ALL_ACTIONS"
    return f"unknown pass {name!r} for LLVM {LLVM_MAJOR}: {hint}"


def _check_o_levels(passes: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in passes:
        if name in _O_PIPELINE:
            if name in seen:
                raise InvalidPassList(
                    f"O-level {name} appears more than once; each O-level is allowed once"
                )
            seen.add(name)


# Registry sections of `opt --print-passes` that list passes (not analyses), by kind.
# The baseline every strategy, search and report measures against (and compiles anyway).
OZ: PassList = parse_pass_list("-Oz")


_SECTION_KINDS = {
    "Module passes": MODULE,
    "CGSCC passes": CGSCC,
    "Function passes": FUNCTION,
    "LoopNest passes": LOOPNEST,
    "Loop passes": LOOP,
    "Machine module passes (WIP)": "machine-module",
    "Machine function passes (WIP)": "machine-function",
}


def parse_registry(text: str) -> dict[str, frozenset[str]]:
    """Pass names in ``opt --print-passes`` output -> the kinds of the sections listing them.

    Analysis sections are skipped: an analysis is not a pass (a pipeline reaches it only through
    ``require<>``/``invalidate<>``). In "with params" sections the parameter list is dropped
    (``gvn<no-pre;pre;...>`` -> ``gvn``, ``print<da><normalized-results>`` -> ``print<da>``).
    """
    names: dict[str, set[str]] = {}
    kind: str | None = None
    params = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            header = line.strip().rstrip(":")
            params = header.endswith(" with params")
            kind = _SECTION_KINDS.get(header.removesuffix(" with params"))
            continue
        if kind is None:
            continue
        name = line.strip()
        if params:
            name = re.sub(r"<[^<>]*>$", "", name)
        names.setdefault(name, set()).add(kind)
    return {name: frozenset(kinds) for name, kinds in names.items()}
