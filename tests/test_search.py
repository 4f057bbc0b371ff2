"""The autotuner on real functions with real LLVM: correctness, determinism, no recompiles."""

from __future__ import annotations

import random

import pytest

from passlm.errors import PasslmError
from passlm.llvm.backend import InProcessCompiler
from passlm.llvm.passes import O_LEVELS, OZ, PassList, parse_pass_list
from passlm.llvm.pool import WorkerPool
from passlm.search import space
from passlm.search.evaluator import Evaluator, Function
from passlm.search.store import Trial, TrialStore
from passlm.search.tuner import Autotuner, TuneConfig, rank

CONFIG = TuneConfig(trials=100, round_size=20, max_length=6, broadcast=10, block=3, seed=3)


@pytest.fixture(scope="module")
def functions(sample_functions):
    from passlm.llvm.ir import content_hash

    return [Function(content_hash(text), text) for text in sample_functions.values()]


def tune(functions, compiler, config=CONFIG, store=None):
    store = store or TrialStore(":memory:", compiler.version)
    evaluator = Evaluator(compiler, store)
    searches = Autotuner(evaluator, config).run(functions)
    return searches, evaluator, store


def outcome(searches):
    return [(s.fn.hash, str(s.best), s.best_count, len(s.tried)) for s in searches]


@pytest.fixture(scope="module")
def pool(toolchain):
    with WorkerPool(toolchain, workers=2) as p:
        yield p


@pytest.fixture(scope="module")
def tuned(functions, pool):
    return tune(functions, pool)


def test_best_is_never_worse_than_oz_and_oz_was_tried(tuned):
    searches, _, _ = tuned
    for s in searches:
        assert str(OZ) in s.tried
        assert s.best_count <= s.oz_count
        assert len(s.tried) >= CONFIG.trials
    assert any(s.best_count < s.oz_count for s in searches)  # sample.c has headroom over -Oz


def test_best_list_is_minimal(tuned, toolchain):
    searches, _, _ = tuned
    with InProcessCompiler(toolchain) as c:
        for s in searches:
            for shorter in space.removals(s.best):
                r = c.run(s.fn.ir, shorter, want_ir=False)
                assert not r.ok or r.count > s.best_count, (str(s.best), str(shorter))


def test_broadcast_lists_were_tried_everywhere(tuned):
    searches, _, _ = tuned
    bests = {str(s.best) for s in searches}
    for s in searches:
        assert bests <= set(s.tried)
        for key in bests:
            t = s.tried[key]
            assert not t.ok or t.count >= s.best_count


def test_results_do_not_depend_on_workers_or_blocks(tuned, functions, toolchain):
    searches, _, _ = tuned
    with WorkerPool(toolchain, workers=1) as one:
        again, _, _ = tune(functions, one, TuneConfig(**{**CONFIG.__dict__, "block": 8}))
    assert outcome(again) == outcome(searches)


def test_store_answers_a_rerun_without_compiling(tuned, functions, pool):
    searches, first, store = tuned
    assert first.compiled == len(store) > 0
    again, second, _ = tune(functions, pool, store=store)
    assert second.compiled == 0
    assert outcome(again) == outcome(searches)


def test_seed_changes_the_search(functions, pool):
    a, _, _ = tune(functions[:2], pool, TuneConfig(trials=20, round_size=10, seed=1, broadcast=0))
    b, _, _ = tune(functions[:2], pool, TuneConfig(trials=20, round_size=10, seed=2, broadcast=0))
    assert set(a[0].tried) != set(b[0].tried)


def test_rank_prefers_fewer_then_shorter_then_oz():
    short = parse_pass_list("-instcombine")
    long = parse_pass_list("-mem2reg -instcombine")
    assert rank(long, 5) < rank(short, 6)
    assert rank(short, 5) < rank(long, 5)
    assert rank(OZ, 5) < rank(short, 5)


def test_space_moves_stay_valid():
    rng = random.Random(0)
    for _ in range(500):
        p = space.random_list(rng, 8)
        assert 1 <= len(p) <= 8
        q = space.mutate(p, rng, 8)
        assert 1 <= len(q) <= 8
        for lst in (p, q):
            levels = [n for n in lst if n in O_LEVELS]
            assert len(levels) == len(set(levels))
    assert space.removals(PassList(("dce",))) == []


def test_store_persists_and_keys_by_llvm_version(tmp_path):
    path = tmp_path / "s.sqlite"
    store = TrialStore(path, "19.1.7")
    store.add([("h", "-Oz", Trial(5, seconds=0.1)), ("h", "-dce", Trial(None, "crash", "boom"))])
    store.close()
    again = TrialStore(path, "19.1.7")
    assert again.lookup("h", ["-Oz", "-dce", "-gvn"]) == {
        "-Oz": Trial(5, None, None, 0.1),
        "-dce": Trial(None, "crash", "boom", 0.0),
    }
    assert TrialStore(path, "18.1.0").lookup("h", ["-Oz"]) == {}


def test_config_is_checked():
    with pytest.raises(PasslmError, match="trials"):
        TuneConfig(trials=0)
    with pytest.raises(PasslmError, match="mutate_fraction"):
        TuneConfig(mutate_fraction=2)


@pytest.mark.slow
def test_ray_executor_matches_local_pool(tuned, functions, toolchain):
    from passlm.search.ray_executor import RayCompiler

    searches, _, _ = tuned
    with RayCompiler(toolchain, num_cpus=2) as ray_compiler:
        assert len(ray_compiler.actors) == 2
        again, evaluator, _ = tune(functions, ray_compiler)
    assert evaluator.compiled > 0
    assert outcome(again) == outcome(searches)
