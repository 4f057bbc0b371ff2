"""The corpus: C/C++ code bases and Csmith programs -> deduplicated one-function IR modules.

``sources`` resolves a source spec to local files, ``compile`` turns one file into function
modules, ``build`` orchestrates (size filter, dedup, splits, summary), ``recipe`` reads the TOML
recipe, ``store`` reads and writes the Parquet corpus, ``report`` renders progress and tables.
"""
