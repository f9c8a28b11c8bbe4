"""Reports: read run directories with pandas; tables, plots, decisions, comparisons.

    compare.py  the one comparison core: the key schema, the reference rules, the ratio
                with its interval and one seed, the verdicts; every "A against B"
    rundir.py   the run-directory contract (files, columns, the cell key, the loop
                ladder) and its one loader: load_run, load_runs
    gate/       the regression gate (`loopbench compare`): samples, stats, judge,
                render, stored baselines
    report/     the report (`loopbench report`): aggregate, derived, decisions,
                render, plots

This package never imports ``loops``, ``benchmarks`` or TensorFlow: rendering and
comparing stored runs works on a machine without a GPU and without TF. Which loop
is the reference and which rung compares with which comes from each run's
metadata.json (its ladder), never from a name written here.
"""
