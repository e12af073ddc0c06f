"""TensorFlow's start-up noise, hidden: the lines its C++ libraries print on file descriptor 2 while it
loads (no Python setting reaches them before absl's logging starts).

The CLI turns hiding on unless `--verbose`; it hides the import of an app's module, and an app that
imports its Keras half later (upscale: only its Keras runtime needs it) imports it through `import_module`
here, so the noise is hidden wherever TensorFlow first loads. Only imports are hidden: an app's own
warnings and progress still show.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType

hide = False  # set by the CLI


def hide_tensorflow_logs(on: bool) -> None:
    """Hide TensorFlow's start-up noise from now on, or show it (`--verbose`); set before TensorFlow is
    imported, when the logs' own levels still reach it."""
    global hide
    hide = on
    if on:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def silenced():
    """Swallow what C++ libraries print to file descriptor 2 meanwhile, if hiding is on."""
    if not hide:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_module(name: str) -> ModuleType:
    with silenced():
        return importlib.import_module(name)
