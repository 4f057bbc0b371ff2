"""Drawing and mutating pass lists: the moves of the search."""

from __future__ import annotations

import random

from passlm.llvm.passes import ACTION_SPACE, O_LEVELS, PassList

O_LEVEL_PROBABILITY = 0.1  # chance that a drawn action is an O-level rather than a pass


def _draw_action(rng: random.Random, used_o_levels: set[str]) -> str:
    if rng.random() < O_LEVEL_PROBABILITY:
        free = [o for o in O_LEVELS if o not in used_o_levels]
        if free:
            return rng.choice(free)
    return rng.choice(ACTION_SPACE)


def random_list(rng: random.Random, max_length: int) -> PassList:
    """A list of 1..max_length actions drawn uniformly (O-levels at most once each)."""
    names: list[str] = []
    used: set[str] = set()
    for _ in range(rng.randint(1, max_length)):
        name = _draw_action(rng, used)
        if name in O_LEVELS:
            used.add(name)
        names.append(name)
    return PassList(tuple(names))


def mutate(passes: PassList, rng: random.Random, max_length: int) -> PassList:
    """A neighbour of ``passes``: one insertion, deletion, replacement or swap."""
    names = list(passes)
    used = {n for n in names if n in O_LEVELS}
    moves = ["replace"]
    if len(names) < max_length:
        moves.append("insert")
    if len(names) > 1:
        moves += ["delete", "swap"]
    move = rng.choice(moves)
    if move == "insert":
        names.insert(rng.randint(0, len(names)), _draw_action(rng, used))
    elif move == "delete":
        del names[rng.randrange(len(names))]
    elif move == "swap":
        i = rng.randrange(len(names) - 1)
        names[i], names[i + 1] = names[i + 1], names[i]
    else:
        i = rng.randrange(len(names))
        used.discard(names[i])
        names[i] = _draw_action(rng, used)
    return PassList(tuple(names))


def removals(passes: PassList) -> list[PassList]:
    """Every list with exactly one action of ``passes`` removed (minimization's candidates)."""
    names = passes.passes
    return (
        [PassList(names[:i] + names[i + 1 :]) for i in range(len(names))] if len(names) > 1 else []
    )
