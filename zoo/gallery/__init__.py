"""The apps on show: `zoo gallery` (a static site, build.py) and `zoo serve` (a local Gradio demo, serve.py).

Both need the optional `web` extra (Jinja2, Pygments, Gradio); `needs_web` turns its absence into
a one-line message rather than an ImportError.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from zoo.errors import BadInput


def needs_web(*modules: str) -> list[ModuleType]:
    """Import the given modules of the `web` extra, or say how to install it."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as missing:
        raise BadInput(f"{missing.name} is not installed: pip install 'keras-zoo[web]'") from None
