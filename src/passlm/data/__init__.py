"""Examples: prompt/answer rendering and parsing, the data set and its Parquet I/O."""
