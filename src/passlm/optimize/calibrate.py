"""Choosing ``predict``'s margin: how sure the model must be before it leaves ``-Oz``.

``predict`` spends no compile, so nothing catches a greedy list that loses to ``-Oz``. With a
margin it uses the list only where the list's log-probability beats that of the answer ``-Oz``
by that many nats (:func:`passlm.optimize.strategies.greedy_margin`). The margin is chosen on
functions the model was not trained on (the tuned data set's ``val`` split): per function the
greedy list and its margin are computed once, the list compiled once, and every margin of the
grid is scored as ``predict`` would be scored by ``passlm eval`` (a list that fails to compile
counts as the unoptimized function).

The rule: the margin with the most functions improved net of those regressed, then the largest
improvement in instructions, then the largest margin. Counting functions rather than
instructions keeps one large function from deciding it: on a few hundred functions the
instruction total moves with a handful of them, and a margin that only fits those does not carry
to other code. ``inf`` (never leave ``-Oz``) is on the grid, so where no margin pays the choice
is ``-Oz`` everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passlm.errors import InputError
from passlm.evaluate.compare import MODEL, Method, run_methods
from passlm.evaluate.metrics import improvement
from passlm.evaluate.testset import TestFunction
from passlm.llvm.backend import Compiler

MARGINS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, math.inf)
META_KEY = "predict_margin"
META_RECORD = "predict_calibration"


@dataclass(frozen=True)
class Calibration:
    """Each margin's ``predict`` on the calibration functions, and the one chosen."""

    margin: float
    rows: list[dict[str, Any]]
    functions: int
    ungated: dict[str, Any] = field(default_factory=dict)  # the greedy list as it is

    def record(self, split: str, sources: Sequence[str]) -> dict[str, Any]:
        """What the model directory keeps of it (JSON; ``inf`` written as the string)."""
        return {
            "split": split,
            "sources": list(sources),
            "functions": self.functions,
            "rule": "most improved net of regressed, then instructions, then largest margin",
            "ungated": self.ungated,
            "margins": [{**r, "margin": _json_margin(r["margin"])} for r in self.rows],
        }


def _json_margin(m: float) -> float | str:
    return "inf" if math.isinf(m) else m


def choose(rows: Sequence[dict[str, Any]]) -> float:
    """The margin the rule picks (see the module docstring)."""
    best = max(rows, key=lambda r: (r["improved"] - r["regressed"], r["overall"], r["margin"]))
    return float(best["margin"])


def calibrate(
    functions: Sequence[TestFunction],
    model,
    tokenizer,
    compiler: Compiler,
    *,
    denylist=None,
    margins: Sequence[float] = MARGINS,
    progress: Callable[[int, int], None] | None = None,
) -> Calibration:
    """Score ``predict`` at every margin of ``margins`` on ``functions``; the chosen margin."""
    from passlm.optimize.strategies import greedy_margins, sure_or_oz

    if not functions:
        raise ValueError("no functions to calibrate on")
    irs = [f.ir for f in functions]
    greedy = greedy_margins(
        model, tokenizer, irs, denylist=denylist, progress=progress, compiler=compiler
    )
    methods = [Method("greedy", MODEL, [lists for lists, _ in greedy], as_is=True)]
    methods += [
        Method(f"margin {m:g}", MODEL, [sure_or_oz(ls, g, m) for ls, g in greedy], as_is=True)
        for m in margins
    ]
    results, _ = run_methods(functions, methods, compiler)
    oz = [f.oz_count for f in functions]

    def row(counts: list[int]) -> dict[str, Any]:
        imp = improvement(oz, counts)
        return {"improved": imp.improved, "regressed": imp.regressed, "overall": imp.overall}

    scored = results[1 : 1 + len(margins)]  # the last result is the autotuner
    rows = [{"margin": m, **row(r.counts)} for m, r in zip(margins, scored, strict=True)]
    return Calibration(choose(rows), rows, len(functions), row(results[0].counts))


def model_margin(model_dir: str | Path) -> float | None:
    """The margin ``passlm model calibrate`` stored with a model (None: not calibrated)."""
    from passlm.model.checkpoint import read_meta

    try:
        value = read_meta(model_dir).get(META_KEY)
    except (OSError, ValueError):
        return None
    if value == "inf":
        return math.inf
    return float(value) if isinstance(value, int | float) else None


def parse_margin(text: str, model_dir: str | Path | None) -> float | None:
    """A margin as ``--margin`` gives it: a number of nats, ``inf``, ``off`` (None), or
    ``model``, the one stored with the model in ``model_dir`` (None: none given or stored); a
    clear error for anything else."""
    text = text.strip().lower()
    if text == "off":
        return None
    if text == "model":
        return model_margin(model_dir) if model_dir is not None else None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"--margin: expected a number, inf, off or model, not {text!r}") from None
    if value != value or value < 0:
        raise InputError(f"--margin: must be at least 0 nats, got {text!r}")
    return value


def save_margin(model_dir: str | Path, calibration: Calibration, record: dict[str, Any]) -> None:
    """Store the chosen margin and how it was chosen in the model's ``passlm.json``."""
    from passlm.files import atomic_write
    from passlm.model.checkpoint import META_FILE, read_meta

    meta = read_meta(model_dir)
    meta[META_KEY] = _json_margin(calibration.margin)
    meta[META_RECORD] = record
    atomic_write(Path(model_dir) / META_FILE, json.dumps(meta, indent=2, sort_keys=True) + "\n")
