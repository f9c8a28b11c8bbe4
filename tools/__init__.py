"""Developer tools: gate validation, measurement targets, browser checks. Never installed.

Run from a checkout: ``python tools/NAME.py`` or through nox (see noxfile.py).
"""
