"""Inference strategies and the ``optimize`` pipeline for user files."""
