"""Tokenizer, model presets, training loop, generation, export and load."""
