"""Warnings raised from plait's own threads, where no frame of the user's code is on the stack.

``warnings.warn(stacklevel=...)`` can only point into the current thread's stack: from a
watchdog thread, that is plait's code. These warnings are about a function of the user's (an
item of it overran), so they point at that function's definition instead.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any


def warn_at_function(message: str, category: type[Warning], fn: Any) -> None:
    """Warn as if from the first line of ``fn`` (unwrapping partials and decorators)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin or a callable object: no source line to point at
        warnings.warn(message, category, stacklevel=2)
        return
    module = getattr(fn, "__module__", None) or "<unknown>"
    registry = getattr(sys.modules.get(module), "__warningregistry__", None)
    warnings.warn_explicit(
        message,
        category,
        code.co_filename,
        code.co_firstlineno,
        module=module,
        registry=registry,
        module_globals=getattr(fn, "__globals__", None),
    )
