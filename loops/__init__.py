"""Loops: what runs. Workloads (data, models, the per-batch training math) and
loop styles (how that step is wrapped and fed), each filled into a registry.
"""
