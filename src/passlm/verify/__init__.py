"""Differential testing: does a pass list change what a program does?

The compiler runs every pass list passlm proposes, so the output is what LLVM produced; but
unusual pass orders can surface LLVM bugs. :mod:`.differential` builds a runnable program at
-O0 and with per-function pass lists, runs both and compares; :mod:`.campaign` does that at
scale on Csmith programs and keeps a reproducer of every mismatch.
"""
