"""Metrics, model evaluation on held-out functions, tables and plots."""
