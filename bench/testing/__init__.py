"""Test support: tiny random-init model builders for offline tests and benchmarks."""
