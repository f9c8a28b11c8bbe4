"""Reports: read run directories with pandas; tables, plots, decisions, comparisons.

``compare``: the comparison core; ``rundir``: the run-directory contract; ``gate/``:
``loopbench compare``; ``report/``: ``loopbench report``. Nothing here imports ``loops``,
``benchmarks`` or TensorFlow: stored runs render on a machine without a GPU or TF.
"""
