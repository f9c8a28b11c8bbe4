"""Import TensorFlow and Keras without their start-up chatter on stderr.

Importing TensorFlow 2.21 makes its native logger print lines ("oneDNN custom
operations are on", "Could not find cuda drivers", CPU feature notes) straight
to file descriptor 2, before ``TF_CPP_MIN_LOG_LEVEL`` can silence them; in a
command that then stops on bad input they bury the one line the user needs.
Importing this module imports both with fd 2 held in a temporary file, and
replays what was held only when the import fails. The CLI imports it before the
registries, and the fork server preloads it (``benchmarks/runner.py``); workers
write to the real stderr (fd 2 is restored at once).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def native_stderr_held() -> Iterator[None]:
    """Send what native code writes to fd 2 to a temporary file; show it on error."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


with native_stderr_held():
    import keras  # noqa: F401
    import tensorflow  # noqa: F401
