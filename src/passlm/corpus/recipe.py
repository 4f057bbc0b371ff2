"""The corpus recipe: which sources, with which licences, seeds, splits and size limits.

A recipe is a TOML file (see ``corpus/recipe.toml`` at the repository root)::

    seed = 0
    holdout = "pypi:pycares==4.4.0"   # code bases kept whole out of training (one or a list)
    exclude_corpora = ["data/corpus.parquet"]  # optional: drop functions already in these
    max_chars = 8000
    [splits]
    train = 0.8
    val = 0.1
    test = 0.1
    [[sources]]
    spec = "pypi:lz4==4.4.5"
    licence = "BSD-3-Clause"
    exclude = ["tests/*"]             # optional globs on paths relative to the source root
    flags = ["-DHAVE_STDINT_H"]       # optional extra compile flags
    [[sources]]
    spec = "csmith:200"
    seed = 1                          # optional; csmith programs use seeds seed..seed+N-1

Every field is checked when loaded; a bad recipe is a one-line :class:`InputError`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from passlm.corpus.filters import SizeLimits
from passlm.corpus.sources import SourceSpec, parse_source_spec
from passlm.corpus.splits import SplitRatios
from passlm.errors import InputError


@dataclass(frozen=True)
class SourceEntry:
    """One source of a recipe."""

    spec: str  # a source spec: directory, archive, pypi:NAME==VERSION or csmith:N
    licence: str | None = None  # SPDX-like licence, verified by hand; None = read from PKG-INFO
    seed: int | None = None  # csmith only: first program seed (default: the recipe seed)
    exclude: tuple[str, ...] = ()  # globs of files not to compile (tests, examples, ...)
    flags: tuple[str, ...] = ()  # extra compile flags, e.g. the -D a code base's build sets
    note: str = ""  # why this source, what it contains

    def __post_init__(self) -> None:
        parsed = self.parsed  # raises InputError for a bad spec
        if self.seed is not None and parsed.kind != "csmith":
            raise ValueError(f"{self.spec}: 'seed' only applies to csmith sources")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"{self.spec}: seed must be >= 0")
        bad = [f for f in self.flags if not f.startswith(("-D", "-U", "-I", "-std=", "-f", "-m"))]
        if bad:
            raise ValueError(f"{self.spec}: flag {bad[0]!r} is not a -D/-U/-I/-std=/-f/-m flag")

    @property
    def parsed(self) -> SourceSpec:
        """The parsed spec."""
        return parse_source_spec(self.spec)


@dataclass(frozen=True)
class Recipe:
    """A whole corpus recipe; CLI options override its fields with ``dataclasses.replace``."""

    sources: tuple[SourceEntry, ...]
    seed: int = 0  # split hashing and default Csmith seed
    holdout: tuple[str, ...] = ()  # sources kept whole out of training (spec or name each)
    # corpora (or tuned files) whose functions are dropped, so that a held-out corpus built on
    # its own shares no function with the training corpus; paths as given (cwd-relative)
    exclude_corpora: tuple[str, ...] = ()
    splits: SplitRatios = field(default_factory=SplitRatios)
    limits: SizeLimits = field(default_factory=SizeLimits)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("a recipe needs at least one source")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        specs = [s.spec for s in self.sources]
        dupes = sorted({s for s in specs if specs.count(s) > 1})
        if dupes:
            raise ValueError(f"source listed twice: {dupes[0]}")
        for key in ("holdout", "exclude_corpora"):
            if isinstance(getattr(self, key), str):  # a lone string would be read letter by letter
                raise TypeError(f"{key} is a tuple of names, not one string")
        for name in self.holdout:
            matches = [s for s in self.sources if s.parsed.matches(name)]
            if len(matches) != 1:
                found = "no source" if not matches else "several sources"
                raise ValueError(f"holdout {name!r} matches {found} of the recipe")
        entries = self.holdout_entries
        if len(set(entries)) != len(entries):
            raise ValueError("holdout names one source twice")

    @property
    def holdout_entries(self) -> tuple[SourceEntry, ...]:
        """The sources named by ``holdout``, in its order."""
        return tuple(
            next(s for s in self.sources if s.parsed.matches(name)) for name in self.holdout
        )

    def to_json(self) -> dict[str, Any]:
        """The recipe as plain data, for the corpus metadata."""
        return asdict(self)


_TOP_KEYS = {
    "seed",
    "holdout",
    "exclude_corpora",
    "splits",
    "sources",
    "max_chars",
    "max_instructions",
    "min_instructions",
}
_SOURCE_KEYS = {"spec", "licence", "seed", "exclude", "flags", "note"}


def parse_recipe(data: dict[str, Any]) -> Recipe:
    """A :class:`Recipe` from parsed TOML; raises ValueError/TypeError/InputError when bad."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(
            f"unknown key {sorted(unknown)[0]!r} (expected {', '.join(sorted(_TOP_KEYS))})"
        )
    entries = []
    for i, raw in enumerate(data.get("sources", [])):
        if not isinstance(raw, dict) or "spec" not in raw:
            raise ValueError(f"sources[{i}] needs a 'spec'")
        bad = set(raw) - _SOURCE_KEYS
        if bad:
            raise ValueError(f"sources[{i}]: unknown key {sorted(bad)[0]!r}")
        lists = {key: tuple(raw.get(key, ())) for key in ("exclude", "flags")}
        entries.append(SourceEntry(**{**raw, **lists}))
    limits = SizeLimits(
        max_chars=data.get("max_chars", SizeLimits.max_chars),
        max_instructions=data.get("max_instructions"),
        min_instructions=data.get("min_instructions", 0),
    )
    return Recipe(
        sources=tuple(entries),
        seed=data.get("seed", 0),
        holdout=_names(data.get("holdout"), "holdout"),
        exclude_corpora=_names(data.get("exclude_corpora"), "exclude_corpora"),
        splits=SplitRatios(**data.get("splits", {})),
        limits=limits,
    )


def _names(value: Any, key: str) -> tuple[str, ...]:
    """A recipe value that is one string or a list of strings, as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"{key} must be a string or a list of strings")


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a TOML recipe."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such recipe file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    try:
        return parse_recipe(data)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: {exc}") from None


def make_recipe(
    recipe_path: str | Path | None,
    sources: list[str],
    *,
    seed: int | None = None,
    holdout: list[str] | None = None,
    exclude_corpora: list[str] | None = None,
    max_chars: int | None = None,
    max_instructions: int | None = None,
    min_instructions: int | None = None,
) -> Recipe:
    """The recipe a command line asks for: a recipe file and/or sources, with overrides."""
    if recipe_path is None and not sources:
        raise InputError("nothing to build: give SOURCE arguments or --recipe FILE")
    base = load_recipe(recipe_path) if recipe_path is not None else None
    try:
        entries = (*(base.sources if base else ()), *(SourceEntry(spec=s) for s in sources))
        limits = base.limits if base else SizeLimits()
        limits = replace(
            limits,
            max_chars=max_chars if max_chars is not None else limits.max_chars,
            max_instructions=(
                max_instructions if max_instructions is not None else limits.max_instructions
            ),
            min_instructions=(
                min_instructions if min_instructions is not None else limits.min_instructions
            ),
        )
        return Recipe(
            sources=entries,
            seed=seed if seed is not None else (base.seed if base else 0),
            holdout=tuple(holdout) if holdout else (base.holdout if base else ()),
            exclude_corpora=(
                *(base.exclude_corpora if base else ()),
                *(exclude_corpora or ()),
            ),
            splits=base.splits if base else SplitRatios(),
            limits=limits,
        )
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from None
