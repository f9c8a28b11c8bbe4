"""Reports: read run directories with pandas; tables, plots, decisions, comparisons.

``compare`` is the one comparison core, ``rundir`` the run-directory contract and its
loader, ``gate/`` the regression gate (``loopbench compare``), ``report/`` the report
(``loopbench report``). Nothing here imports ``loops``, ``benchmarks`` or TensorFlow, so
stored runs render and compare on a machine without a GPU or TF; which loop is the
reference comes from each run's metadata.json, never from a name written here.
"""
