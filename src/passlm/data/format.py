"""The text the model reads and writes: prompt, answer and compiler feedback.

Every fixed phrase lives in this module, so training, the tokenizer (which makes the markers
single tokens) and inference agree on one format (DESIGN.md, "Prompt and answer")::

    Prompt:  Optimize this LLVM IR for instruction count:
             <code>
             ...normalized unoptimized IR...
             </code>
             [-Oz gives 14 instructions:
             <code>
             ...the IR -Oz makes of it...
             </code>]
    Answer:  Run passes `-reg2mem -instcombine -Os` to reduce instruction count from 39 to 14:
             <code>
             ...optimized IR...
             </code>

The bracketed part is the *-Oz context* (:data:`PROMPT_OZ`): a model trained with it reads what
-Oz, which every strategy compiles anyway, leaves of the function (what is left to win is often
visible there). It doubles the prompt; the *-Oz summary* (:data:`PROMPT_OZ_SUMMARY`) gives one
line instead, the count and what -Oz's output is made of (``-Oz gives 14 instructions: 3 blocks;
4 load, 3 store, ...``: blocks, then opcodes by count). A model records the prompt it was
trained on (``passlm.json``, ``"prompt"``); one trained on plain prompts too, beside a context,
says so (:data:`PLAIN_PROMPTS`) and reads them where a strategy compiles nothing first.
The pass-list-only answer (ablation "no aux") is the first line ending in ``.`` instead of ``:``.
The feedback task appends :func:`render_feedback` to a first answer; the model's second answer
starts with :data:`SURE` (keep the first answer) or :data:`RETRY` followed by a new answer.

:func:`parse_answer` reads model output and never raises: whatever is missing or invalid comes
back as ``None`` fields and a one-line ``pass_error``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from passlm.errors import InvalidPassList, UnknownPass
from passlm.llvm.passes import PassList, parse_pass_list

CODE_OPEN = "<code>"
CODE_CLOSE = "</code>"
INSTRUCTION = "Optimize this LLVM IR for instruction count:"
PASSES_OPEN = "Run passes `"
PASSES_CLOSE = "`"
COUNTS_FROM = " to reduce instruction count from "
COUNTS_TO = " to "
AUX_END = ":"  # the optimized IR follows
NO_AUX_END = "."  # pass-list-only answer
OZ_CONTEXT = "-Oz gives "
OZ_CONTEXT_END = " instructions:"
SURE = "I am sure!"
RETRY = "Let me try again."
FEEDBACK_HEADER = "Compiler feedback:"

# Fixed phrases the tokenizer should keep whole (passlm.model.tokenizer adds them as tokens).
MARKERS: tuple[str, ...] = (
    CODE_OPEN,
    CODE_CLOSE,
    INSTRUCTION,
    PASSES_OPEN,
    COUNTS_FROM,
    SURE,
    RETRY,
    FEEDBACK_HEADER,
)

# Prompt kinds: the unoptimized IR alone, or followed by the -Oz context (its IR, or a summary).
PROMPT_PLAIN, PROMPT_OZ, PROMPT_OZ_SUMMARY = "ir", "ir+oz", "ir+oz-summary"
PROMPT_KINDS = (PROMPT_PLAIN, PROMPT_OZ, PROMPT_OZ_SUMMARY)
# The passlm.json key of a model trained on plain prompts beside a context kind: it reads the
# context where -Oz is compiled anyway and the plain prompt where nothing is (``predict``).
PLAIN_PROMPTS = "plain_prompts"

# Feedback variants of the compiler-feedback paper: "fast" gives pass validity and counts (so
# generation can stop after the pass list), "short" adds the BLEU of the generated IR and the
# first compiler error, "long" adds the IR the compiler produced.
FAST, SHORT, LONG = "fast", "short", "long"
FEEDBACK_KINDS = (FAST, SHORT, LONG)

# Counts are bounded so that int() never meets a pathological digit string.
_HEADER = re.compile(
    f"{re.escape(PASSES_OPEN)}(?P<passes>[^{PASSES_CLOSE}]*)(?P<close>{PASSES_CLOSE})?"
    f"(?P<counts>{re.escape(COUNTS_FROM)}(?P<before>\\d{{1,9}}){re.escape(COUNTS_TO)}"
    r"(?P<after>\d{1,9}))?"
)
_CODE = re.compile(re.escape(CODE_OPEN) + r"\n?(?P<ir>.*?)" + re.escape(CODE_CLOSE), re.DOTALL)


def _code_block(ir: str) -> str:
    """``<code>``, the IR ending in exactly one newline, ``</code>``."""
    body = ir.rstrip("\n")
    return f"{CODE_OPEN}\n{body}\n{CODE_CLOSE}"


@dataclass(frozen=True)
class OzContext:
    """What -Oz made of a function: its instruction count and IR."""

    count: int
    ir: str


def oz_summary(oz_ir: str) -> str:
    """What -Oz's output is made of, in one line: its blocks, then each opcode's count (most
    frequent first, ties by name)."""
    from passlm.llvm.ir import ir_features

    feats = ir_features(oz_ir)
    ops = sorted(
        ((n, k.removeprefix("op:")) for k, n in feats.items() if k.startswith("op:")),
        key=lambda item: (-item[0], item[1]),
    )
    return f"{feats['blocks']} blocks; " + ", ".join(f"{n} {op}" for n, op in ops)


def render_prompt(ir: str, oz: OzContext | None = None, kind: str = PROMPT_OZ) -> str:
    """The instruction and the normalized unoptimized IR, then the -Oz context if ``oz`` is
    given (``kind``: its IR, :data:`PROMPT_OZ`, or its summary line, :data:`PROMPT_OZ_SUMMARY`);
    the answer follows on the next line."""
    text = f"{INSTRUCTION}\n{_code_block(ir)}\n"
    if oz is None:
        return text
    if kind == PROMPT_OZ_SUMMARY:
        return text + f"{OZ_CONTEXT}{oz.count}{OZ_CONTEXT_END} {oz_summary(oz.ir)}\n"
    if kind != PROMPT_OZ:
        raise ValueError(f"no -Oz context in a {kind!r} prompt")
    return text + f"{OZ_CONTEXT}{oz.count}{OZ_CONTEXT_END}\n{_code_block(oz.ir)}\n"


def render_answer(
    passes: PassList | str, before: int, after: int, optimized_ir: str | None = None
) -> str:
    """The answer: pass list and counts, then the optimized IR unless ``optimized_ir`` is None."""
    pass_text = str(passes if isinstance(passes, PassList) else parse_pass_list(passes))
    head = f"{PASSES_OPEN}{pass_text}{PASSES_CLOSE}{COUNTS_FROM}{before}{COUNTS_TO}{after}"
    if optimized_ir is None:
        return head + NO_AUX_END
    return f"{head}{AUX_END}\n{_code_block(optimized_ir)}"


@dataclass(frozen=True)
class ParsedAnswer:
    """What could be read from an answer; ``None`` where a part is missing or invalid."""

    passes: PassList | None
    pass_error: str | None  # why ``passes`` is None
    before: int | None
    after: int | None
    ir: str | None  # the optimized IR, ending in a newline, if a complete code block follows

    @property
    def valid(self) -> bool:
        """Whether the answer names a usable pass list."""
        return self.passes is not None


def parse_answer(text: str) -> ParsedAnswer:
    """Read an answer (or any model output) without ever raising."""
    if not isinstance(text, str):
        return ParsedAnswer(None, f"expected text, got {type(text).__name__}", None, None, None)
    m = _HEADER.search(text)
    if m is None:
        return ParsedAnswer(None, f"no pass list (no {PASSES_OPEN!r})", None, None, None)
    passes: PassList | None = None
    error: str | None = None
    if m.group("close") is None:
        error = "unterminated pass list (no closing backtick)"
    else:
        try:
            passes = parse_pass_list(m.group("passes"))
        except (UnknownPass, InvalidPassList) as exc:
            error = str(exc)
    before = int(m.group("before")) if m.group("counts") else None
    after = int(m.group("after")) if m.group("counts") else None
    code = _CODE.search(text, m.end())
    ir = code.group("ir").rstrip("\n") + "\n" if code else None
    return ParsedAnswer(passes, error, before, after, ir)


def _count_line(label: str, predicted: int | None, correct: int) -> str:
    shown = "missing" if predicted is None else str(predicted)
    return f"{label} instruction count: {shown} [{predicted == correct}], correct {correct}"


def render_feedback(
    answer: ParsedAnswer,
    *,
    source_count: int,
    target_count: int | None,
    kind: str = SHORT,
    bleu: float | None = None,
    error: str | None = None,
    compiled_ir: str | None = None,
) -> str:
    """Compiler feedback on a first answer, appended after it for the second turn.

    ``source_count``: the input's true instruction count; ``target_count``: the count the
    compiler produced with the answer's passes (None when they are invalid); ``bleu``: of the
    generated IR against ``compiled_ir``; ``error``: the first compiler error of the generated IR
    (else the pass list's error).
    """
    if kind not in FEEDBACK_KINDS:
        raise ValueError(f"feedback kind {kind!r} is not one of {', '.join(FEEDBACK_KINDS)}")
    lines = [
        FEEDBACK_HEADER,
        f"Passes valid: {answer.valid}",
        _count_line("Source", answer.before, source_count),
    ]
    if target_count is not None:
        lines.append(_count_line("Target", answer.after, target_count))
    if kind != FAST:
        if bleu is not None:
            lines.append(f"Target IR BLEU score: {bleu:.2f}")
        first_error = next(
            (x for x in (error or answer.pass_error or "").splitlines() if x.strip()), ""
        )
        if first_error:
            lines.append(f"errors: {first_error.strip()}")
    text = "\n".join(lines) + "\n"
    if kind == LONG and compiled_ir is not None:
        text += _code_block(compiled_ir) + "\n"
    return text


def continue_after_feedback(conversation: str, answer: str, feedback: str) -> str:
    """The conversation so far, the model's answer (its header line) and the feedback on it:
    the prompt of the next turn."""
    return f"{conversation}{answer.rstrip(chr(10))}\n{feedback}"


def render_second_answer(answer: str | None) -> str:
    """The answer after feedback: :data:`SURE` to keep the first one, else a retry."""
    return SURE if answer is None else f"{RETRY}\n{answer}"


def parse_second_answer(text: str) -> tuple[bool | None, ParsedAnswer]:
    """Whether the model is sure (None: neither phrase) and the new answer, never raising."""
    stripped = text.lstrip() if isinstance(text, str) else ""
    if stripped.startswith(SURE):
        return True, parse_answer(stripped[len(SURE) :])
    if stripped.startswith(RETRY):
        return False, parse_answer(stripped[len(RETRY) :])
    return None, parse_answer(text)


def parse_prompt(text: str) -> str | None:
    """The IR inside a prompt (ending in a newline), or None if there is no complete block."""
    code = _CODE.search(text) if isinstance(text, str) else None
    return code.group("ir").rstrip("\n") + "\n" if code else None
