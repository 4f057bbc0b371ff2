"""The autotuner: random search, minimization and broadcast of pass lists per function."""
