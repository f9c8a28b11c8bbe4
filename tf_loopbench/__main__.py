"""``python -m tf_loopbench``: the ``loopbench`` command line."""

import sys

from tf_loopbench.benchmarks.cli import main

if __name__ == "__main__":
    sys.exit(main())
