"""Reports: read run directories with pandas; tables, plots, decisions, comparisons.

This package never imports ``loops`` or TensorFlow: rendering and comparing
stored runs works on a machine without a GPU and without TF.
"""
