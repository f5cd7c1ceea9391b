"""The error of a command line ``plait run`` cannot run (exit status 255, as GNU parallel's):
a leaf, raised by the options and by the inputs as they are read."""

from __future__ import annotations


class UsageError(Exception):
    """A command line ``plait run`` cannot run: exit status 255, as GNU parallel's."""
