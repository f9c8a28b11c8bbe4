"""Benchmarks: measures loops. Phases, the clock, host sync, worker processes,
machine metadata; writes a run directory (see reports.rundir for the contract).
"""
