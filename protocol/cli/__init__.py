"""The ``helpline`` command line; ``main`` is its entry point."""

from .main import main

__all__ = ["main"]
