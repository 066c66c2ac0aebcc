"""`ugatit demo`: the built-in shapes task (`shapes`), trained, measured and reported (`run`)."""

from .run import run_demo

__all__ = ["run_demo"]
