"""The pass catalogue against the installed LLVM 19: registry coverage, parsing, rendering, and
every action run alone through a real ``opt``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from passlm.errors import InvalidPassList, PasslmError, UnknownPass
from passlm.llvm import passes as P
from passlm.llvm.passes import (
    ACTION_SPACE,
    ALL_ACTIONS,
    CATALOGUE,
    EXCLUDED,
    EXCLUSION_RULES,
    O_LEVELS,
    PassList,
    is_valid_pass,
    parse_pass_list,
    pass_kind,
)
from passlm.llvm.toolchain import default_toolchain
from passlm.process import run_command

pytestmark = pytest.mark.filterwarnings("error")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def registry() -> dict[str, frozenset[str]]:
    out = run_command([default_toolchain().opt, "--print-passes"], timeout=60).text
    return P.parse_registry(out)


@pytest.fixture(scope="module")
def ir_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sample.c as unoptimized IR, and after mem2reg so loop passes see SSA loops."""
    tc = default_toolchain()
    tmp = tmp_path_factory.mktemp("passes")
    o0 = tmp / "sample.ll"
    run_command(
        [
            tc.clang,
            "-O0",
            "-Xclang",
            "-disable-O0-optnone",
            "-emit-llvm",
            "-S",
            str(FIXTURES / "sample.c"),
            "-o",
            str(o0),
        ],
        timeout=60,
    )
    ssa = tmp / "sample.mem2reg.ll"
    run_command([tc.opt, "-passes=function(mem2reg)", "-S", str(o0), "-o", str(ssa)], timeout=60)
    return {"O0": o0, "mem2reg": ssa}


def run_opt(pipeline: str, ir: Path) -> None:
    """Run one pipeline on one IR file; fail with opt's own stderr if it does not succeed."""
    done = run_command(
        [default_toolchain().opt, f"-passes={pipeline}", "-disable-output", str(ir)],
        timeout=60,
        check=False,
    )
    stderr = done.stderr.decode("utf-8", errors="replace")
    status = done.returncode
    assert status == 0, f"opt -passes={pipeline} failed ({status}): {stderr[-1500:]}"
    assert stderr == "", f"opt -passes={pipeline} wrote to stderr: {stderr[-1500:]}"


# --- the catalogue against the installed registry -------------------------------------------


def test_every_registry_name_is_an_action_or_excluded(registry):
    assert len(registry) > 300 and registry["instcombine"] == {"function"}  # parsed for real
    missing = sorted(set(registry) - set(CATALOGUE) - set(EXCLUDED))
    assert missing == [], f"registry passes neither in the action space nor excluded: {missing}"


def test_every_catalogue_and_exclusion_entry_is_in_the_registry(registry):
    stale = sorted((set(CATALOGUE) | set(EXCLUDED)) - set(registry))
    assert stale == [], f"names not in the installed registry: {stale}"


def test_action_space_and_exclusions_are_disjoint():
    assert set(CATALOGUE).isdisjoint(EXCLUDED)


def test_catalogue_kinds_match_registry_sections(registry):
    # loop-mssa passes are listed as loop passes; the rest by their own kind.
    section_of = {P.LOOP_MSSA: P.LOOP}
    wrong = {
        name: (kind, sorted(registry[name]))
        for name, kind in CATALOGUE.items()
        if section_of.get(kind, kind) not in registry[name]
    }
    assert wrong == {}


def test_exclusion_rules_are_used_documented_and_one_line():
    assert set(EXCLUDED.values()) == set(EXCLUSION_RULES)
    for rule, reason in EXCLUSION_RULES.items():
        assert reason and "\n" not in reason, rule


def test_constants():
    assert ACTION_SPACE == tuple(sorted(CATALOGUE))
    assert O_LEVELS == ("-O0", "-O1", "-O2", "-O3", "-Os", "-Oz")
    assert ALL_ACTIONS == ACTION_SPACE + O_LEVELS
    assert set(CATALOGUE.values()) <= set(P.KINDS)
    assert 100 <= len(ACTION_SPACE) <= 140
    # The passes every pipeline in the seed papers leans on are actions.
    for name in (
        "instcombine",
        "simplifycfg",
        "mem2reg",
        "reg2mem",
        "sroa",
        "gvn",
        "licm",
        "loop-rotate",
        "indvars",
        "inline",
        "globalopt",
        "loop-unroll",
        "early-cse",
    ):
        assert name in CATALOGUE, name


@pytest.mark.parametrize(
    "name",
    [
        "asan",
        "print<domtree>",
        "verify",
        "codegenprepare",
        "coro-split",
        "internalize",
        "trigger-crash-module",
    ],
)
def test_known_excluded_passes(name):
    assert name in EXCLUDED and name not in CATALOGUE


# --- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "-instcombine -simplifycfg",
        "instcombine,simplifycfg",
        "instcombine simplifycfg",
        "instcombine, simplifycfg",
        "  --instcombine\n\t-simplifycfg  ",
        "instcombine<no-verify-fixpoint>,simplifycfg",
        ["instcombine", "simplifycfg"],
        ("-instcombine", "-simplifycfg"),
        ["-instcombine -simplifycfg"],
    ],
)
def test_parse_spellings(spec):
    assert parse_pass_list(spec).passes == ("instcombine", "simplifycfg")


@pytest.mark.parametrize("spec", ["-Oz", "Oz", "default<Oz>", "--Oz", ["default<Oz>"]])
def test_parse_o_level_spellings(spec):
    assert parse_pass_list(spec).passes == ("-Oz",)


def test_parse_mixed():
    pl = parse_pass_list("-mem2reg default<O2>, licm Os -licm")
    assert pl.passes == ("mem2reg", "-O2", "licm", "-Os", "licm")


def test_str_is_the_user_form_and_round_trips():
    pl = parse_pass_list("reg2mem,instcombine default<Os>")
    assert str(pl) == "-reg2mem -instcombine -Os"
    assert parse_pass_list(str(pl)) == pl
    assert len(pl) == 3
    assert list(pl) == ["reg2mem", "instcombine", "-Os"]


def test_passlist_is_hashable_and_takes_any_sequence():
    assert PassList(["mem2reg", "-Oz"]) == PassList(("mem2reg", "-Oz"))
    assert len({PassList(("dce",)), PassList(["dce"])}) == 1
    assert PassList().passes == ()


def test_unknown_pass_names_it_and_suggests():
    with pytest.raises(UnknownPass) as err:
        parse_pass_list("-mem2reg -instcombin")
    msg = str(err.value)
    assert "'instcombin'" in msg and "instcombine" in msg and "\n" not in msg


def test_unknown_pass_without_close_match():
    with pytest.raises(UnknownPass, match="unknown pass 'zzzzqqq'"):
        parse_pass_list("zzzzqqq")


def test_excluded_pass_says_why():
    with pytest.raises(UnknownPass) as err:
        parse_pass_list("-asan")
    assert "'asan'" in str(err.value) and "instrumentation" in str(err.value)


def test_unknown_error_is_a_passlm_error():
    with pytest.raises(PasslmError):
        parse_pass_list("not-a-pass")


def test_passlist_rejects_non_canonical_names():
    with pytest.raises(UnknownPass):
        PassList(("-instcombine",))
    with pytest.raises(UnknownPass):
        PassList(("default<Oz>",))


@pytest.mark.parametrize("spec", ["-Oz -instcombine Oz", "O2 default<O2>", ["-O0", "-O0"]])
def test_repeated_o_level(spec):
    with pytest.raises(InvalidPassList, match="more than once"):
        parse_pass_list(spec)
    with pytest.raises(InvalidPassList):
        PassList(("-O3", "dce", "-O3"))


def test_distinct_o_levels_and_repeated_passes_are_fine():
    assert len(parse_pass_list("-O1 -O2 -O3 -Os -Oz -O0 -licm -licm")) == 8


@pytest.mark.parametrize("spec", ["", "   ", ",,", [], [""], ["  ", ","]])
def test_empty(spec):
    with pytest.raises(InvalidPassList, match="empty"):
        parse_pass_list(spec)


@pytest.mark.parametrize(
    "spec", ["function(mem2reg)", "mem2reg;dce", "-", "---dce", "dce)", "<Oz>", ["dce", 3], 42]
)
def test_garbage(spec):
    with pytest.raises(InvalidPassList) as err:
        parse_pass_list(spec)
    assert "\n" not in str(err.value)


def test_parameters_other_than_the_rendered_ones_are_rejected():
    with pytest.raises(InvalidPassList, match="use 'gvn'"):
        parse_pass_list("gvn<no-pre>")
    with pytest.raises(InvalidPassList, match="use 'instcombine'"):
        parse_pass_list("instcombine<verify-fixpoint>")


def test_is_valid_pass():
    for name in (
        "instcombine",
        "-instcombine",
        "instcombine<no-verify-fixpoint>",
        "-Oz",
        "Oz",
        "default<O3>",
        "licm",
    ):
        assert is_valid_pass(name), name
    for name in ("asan", "instcombin", "", "-O4", "gvn<no-pre>", "function(dce)", "-Oz -O3"):
        assert not is_valid_pass(name), name


def test_pass_kind():
    assert pass_kind("instcombine") == "function"
    assert pass_kind("-licm") == "loop-mssa"
    assert pass_kind("lnicm") == "loop-mssa"
    assert pass_kind("indvars") == "loop"
    assert pass_kind("loop-interchange") == "loopnest"
    assert pass_kind("inline") == "cgscc"
    assert pass_kind("globalopt") == "module"
    assert pass_kind("-Oz") == "module"
    with pytest.raises(UnknownPass):
        pass_kind("nope")


# --- rendering ---------------------------------------------------------------------------

RENDERINGS = [
    ("", None),
    (
        "-mem2reg -instcombine -licm -Oz -globalopt",
        "function(mem2reg,instcombine<no-verify-fixpoint>,loop-mssa(licm)),default<Oz>,globalopt",
    ),
    ("-instcombine", "function(instcombine<no-verify-fixpoint>)"),
    ("-O0", "default<O0>"),
    ("-indvars", "function(loop(indvars))"),
    ("-loop-interchange", "function(loop(loop-interchange))"),
    (
        "-licm -loop-rotate -indvars -loop-flatten -licm -lnicm -sroa",
        "function(loop-mssa(licm),loop(loop-rotate,indvars,loop-flatten),loop-mssa(licm,lnicm),sroa)",
    ),
    (
        "-inline -function-attrs -sroa -argpromotion",
        "cgscc(inline,function-attrs),function(sroa),cgscc(argpromotion)",
    ),
    ("-indvars -dce -loop-deletion", "function(loop(indvars),dce,loop(loop-deletion))"),
    ("-loop-unroll -O1 -O2 -sccp", "function(loop-unroll),default<O1>,default<O2>,function(sccp)"),
    (
        "-simplifycfg -globaldce -simplifycfg",
        "function(simplifycfg),globaldce,function(simplifycfg)",
    ),
]


@pytest.mark.parametrize("spec,expected", RENDERINGS)
def test_pipeline_rendering(spec, expected, ir_files):
    pl = PassList() if spec == "" else parse_pass_list(spec)
    if expected is None:  # the empty list: no passes at all
        assert pl.pipeline() == "" and str(pl) == "" and len(pl) == 0
        return
    assert pl.pipeline() == expected
    run_opt(pl.pipeline(), ir_files["mem2reg"])


def test_random_lists_render_to_pipelines_opt_accepts(ir_files):
    # A fixed-seed sample of lists mixing every kind, run through opt to check the grouping.
    # (A search of 4,500 random lists of length 1-25 over sample.c/sample.cpp found no crash.)
    rng = random.Random(1234)
    for _ in range(40):
        names = [rng.choice(ACTION_SPACE) for _ in range(rng.randint(2, 8))]
        if rng.random() < 0.3:
            names.insert(rng.randrange(len(names) + 1), rng.choice(O_LEVELS))
        pl = PassList(tuple(names))
        assert parse_pass_list(str(pl)) == pl
        run_opt(pl.pipeline(), ir_files["mem2reg"])


# --- every action alone through opt ------------------------------------------------------


@pytest.mark.parametrize("name", ALL_ACTIONS)
def test_action_runs_alone(name, ir_files):
    pipeline = PassList((name,)).pipeline()
    for ir in ir_files.values():
        run_opt(pipeline, ir)
