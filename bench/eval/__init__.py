"""Evaluation: retrieval metrics, the ``evaluate`` engine, timing, runs, reports and regression checks."""
