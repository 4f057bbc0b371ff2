"""How good is a model's greedy answer, checked with the real compiler.

For every function the model writes its answer greedily (zero extra compiles: the paper's
headline mode). The pass list is then compiled for real:

* a list that is invalid, or that LLVM rejects or crashes on, counts as the unoptimized
  function (nothing usable was proposed), so a model is never flattered by its failures;
* a prompt too long for the model's context counts as ``-Oz`` (what ``passlm optimize`` does
  with it) and is reported as such.

On a subset (``ir_functions``) the whole answer is generated, and the optimized IR the model
wrote is checked: does it parse and verify, is it exactly the compiler's output for the model's
own pass list, and its BLEU against that output. The predicted counts give the count errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from passlm.data.format import parse_answer, parse_prompt, render_prompt
from passlm.evaluate.metrics import bleu, fraction_of, improvement, mape, percent
from passlm.llvm.backend import Compiler, Task
from passlm.llvm.ir import normalize
from passlm.llvm.passes import PassList
from passlm.model.generate import ANSWER, HEADER, generate
from passlm.optimize.prompts import model_prompts, model_renaming


@dataclass(frozen=True)
class EvalFunction:
    """A function with its reference counts (from the autotuner)."""

    hash: str
    function: str
    source: str
    split: str
    ir: str  # normalized unoptimized IR, as in the prompt
    o0_count: int
    oz_count: int
    best_count: int  # the autotuner's best


@dataclass(frozen=True)
class Outcome:
    """What the model did on one function."""

    hash: str
    function: str
    source: str
    o0_count: int
    oz_count: int
    best_count: int
    fits: bool  # the prompt fit the model's context
    passes: str | None  # the proposed pass list, if valid
    pass_error: str | None
    count: int  # instructions after the proposal (see the module docstring for failures)
    compile_error: str | None
    predicted_before: int | None
    predicted_after: int | None
    ir_generated: bool | None  # None: IR not asked for this function
    ir_parses: bool | None
    ir_error: str | None  # first parse/verify error of the generated IR
    ir_exact: bool | None
    ir_bleu: float | None


def from_examples(examples) -> list[EvalFunction]:
    """Evaluation functions from data set examples (:class:`passlm.data.dataset.Example`)."""
    out = []
    for e in examples:
        ir = parse_prompt(e.prompt)
        if ir is None:
            continue
        out.append(
            EvalFunction(
                e.hash, e.function, e.source, e.split, ir, e.o0_count, e.oz_count, e.best_count
            )
        )
    return out


def _first_line(text: str | None) -> str | None:
    if not text:
        return None
    return next((x.strip() for x in text.splitlines() if x.strip()), None)


def evaluate_model(
    model,
    tokenizer,
    functions: Sequence[EvalFunction],
    compiler: Compiler,
    *,
    ir_functions: int = 0,
    batch_size: int = 8,
) -> list[Outcome]:
    """Greedy answers for ``functions``, compiled; the first ``ir_functions`` also write IR."""
    made = model_prompts(model, [f.ir for f in functions], compiler, tokenizer)
    # a function whose -Oz fails keeps the plain prompt: its answer cannot compile either
    prompts = [
        p if p is not None else render_prompt(f.ir) for p, f in zip(made, functions, strict=True)
    ]
    n_ir = min(ir_functions, len(functions))
    full = generate(model, tokenizer, prompts[:n_ir], until=ANSWER, batch_size=batch_size)
    heads = generate(model, tokenizer, prompts[n_ir:], until=HEADER, batch_size=batch_size)
    generations = [*full, *heads]
    answers = [parse_answer(g.text) if g is not None else None for g in generations]

    # One batch of compiles: every valid proposal, with its IR where generated IR is checked.
    tasks, task_of = [], {}
    for i, (f, a) in enumerate(zip(functions, answers, strict=True)):
        if a is not None and a.passes is not None:
            task_of[i] = len(tasks)
            tasks.append(Task(f.ir, a.passes, want_ir=i < n_ir))
    results = compiler.run_tasks(tasks)
    checks, check_of = [], {}
    for i in range(n_ir):
        a = answers[i]
        if a is not None and a.ir is not None:
            check_of[i] = len(checks)
            checks.append(Task(a.ir, PassList(()), want_ir=False))  # parse + verify only
    parsed = compiler.run_tasks(checks)

    outcomes = []
    for i, (f, a) in enumerate(zip(functions, answers, strict=True)):
        r = results[task_of[i]] if i in task_of else None
        if a is None:
            count, compile_error = f.oz_count, None
        elif r is not None and r.ok:
            count, compile_error = r.count, None  # type: ignore[assignment]
        else:
            count, compile_error = f.o0_count, _first_line(r.error) if r else None
        ir_generated = ir_parses = ir_exact = None
        ir_error = ir_bleu = None
        if i < n_ir and a is not None:
            ir_generated = a.ir is not None
            if i in check_of:
                check = parsed[check_of[i]]
                ir_parses = check.ok
                ir_error = _first_line(check.error)
                if r is not None and r.ok and r.ir is not None:
                    reference = model_renaming(model, f.ir)(r.ir)  # the names the model writes
                    ir_exact = normalize(a.ir) == reference if check.ok else False
                    ir_bleu = bleu(a.ir, reference)
            else:
                ir_parses = False
                ir_error = "no complete <code> block in the answer"
        outcomes.append(
            Outcome(
                hash=f.hash,
                function=f.function,
                source=f.source,
                o0_count=f.o0_count,
                oz_count=f.oz_count,
                best_count=f.best_count,
                fits=a is not None,
                passes=str(a.passes) if a is not None and a.passes is not None else None,
                pass_error=a.pass_error if a is not None else None,
                count=count,
                compile_error=compile_error,
                predicted_before=a.before if a is not None else None,
                predicted_after=a.after if a is not None else None,
                ir_generated=ir_generated,
                ir_parses=ir_parses,
                ir_error=ir_error,
                ir_exact=ir_exact,
                ir_bleu=ir_bleu,
            )
        )
    return outcomes


def summarize(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The numbers of a model evaluation: improvement, validity, count errors, IR quality."""
    oz = [o.oz_count for o in outcomes]
    model = improvement(oz, [o.count for o in outcomes])
    tuner = improvement(oz, [o.best_count for o in outcomes])
    fitted = [o for o in outcomes if o.fits]
    before_mape, _ = mape([o.predicted_before for o in fitted], [o.o0_count for o in fitted])
    after_mape, _ = mape([o.predicted_after for o in fitted], [o.count for o in fitted])
    with_ir = [o for o in outcomes if o.ir_generated is not None]
    compared = [o for o in with_ir if o.ir_exact is not None]
    bleus = [o.ir_bleu for o in compared if o.ir_bleu is not None]
    return {
        "functions": len(outcomes),
        "too_long": len(outcomes) - len(fitted),
        "valid_pass_lists_pct": percent(sum(o.passes is not None for o in fitted), len(fitted)),
        "compile_failures": sum(o.compile_error is not None for o in outcomes),
        "model": model.to_dict(),
        "autotuner": tuner.to_dict(),
        "fraction_of_autotuner": fraction_of(model.overall, tuner.overall),
        "count_mape_before": before_mape,
        "count_mape_after": after_mape,
        "ir_functions": len(with_ir),
        "ir_complete_pct": percent(sum(bool(o.ir_generated) for o in with_ir), len(with_ir)),
        "ir_parses_pct": percent(sum(bool(o.ir_parses) for o in with_ir), len(with_ir)),
        "ir_exact_pct": percent(sum(bool(o.ir_exact) for o in compared), len(compared)),
        "ir_bleu": sum(bleus) / len(bleus) if bleus else None,
    }


def outcome_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    """Outcomes as plain dicts (for JSON and Parquet)."""
    return [asdict(o) for o in outcomes]
