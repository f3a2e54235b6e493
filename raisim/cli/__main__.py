"""``python -m raisim.cli``: the command line, as the ``raisim`` console script."""

from .app import entry

entry()
