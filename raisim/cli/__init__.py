"""The command line (``raisim simulate | sweep | predict | calibrate | schema | trials | version``).

The only layer that parses arguments, prints, or draws figures for the user.
"""

from .app import entry, main

__all__ = ["entry", "main"]
