"""passlm: a language model proposes LLVM pass lists; the compiler runs them."""

__version__ = "0.1.0"
