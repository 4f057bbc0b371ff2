"""The compiler layer: LLVM tools, IR handling, the pass catalogue, backends and the worker pool."""
