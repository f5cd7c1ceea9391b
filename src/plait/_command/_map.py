"""``plait map MODULE:FUNCTION``: a Python function over inputs from the shell, through
``plait.map`` with its defaults (where it runs and how wide: ``backend="auto"``), each result
printed on a line of its own, in input order.

The inputs are ``plait run``'s (stdin's lines, ``:::`` lists, ``::::`` files, ``--colsep``):
each input's values are the function's arguments. With ``--json`` each value is read as JSON
and each result written as JSON. A failure stops the map and prints the user's own exception
with the worker's traceback (exit status 1); ``--keep-going`` prints it and goes on (the exit
status is then the number of failed inputs, at most 101, as ``plait run``'s).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from ._inputs import arguments
from ._options import MARKERS, UsageError, _sources, check_readable

DESCRIPTION = """\
Call MODULE:FUNCTION once per input through plait.map (threads or processes, as wide as pays:
plait measures), and print each result on a line of its own, in input order. MODULE is a
module name (importable from here) or a path to a .py file. The inputs: ::: ARGS, :::: FILES,
or else the lines of stdin; with several sources (or --colsep), each input's values are the
function's arguments.

Examples:
  plait map mytools:checksum :::: files.txt
  seq 100 | plait map --json scoring.py:score --trace run.html
"""


def add_map_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "map",
        help="call a Python function over inputs, through plait.map",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--json", action="store_true", help="read each input as JSON, write each result as JSON")
    add("--keep-going", action="store_true", help="print a failure and go on to the next input")
    add("--trace", metavar="FILE", help="write the run's timeline (.html) or trace (.json)")
    add("-j", "--workers", type=int, metavar="N", help="how many workers (default: plait's)")
    add("--backend", default="auto", help="auto (the default), thread, process, ...")
    add("-0", "--null", action="store_true", help="inputs are separated by NUL, not newline")
    add("--colsep", metavar="REGEX", help="split each input into the function's arguments")
    add("function", metavar="MODULE:FUNCTION")
    add("inputs", nargs=argparse.REMAINDER, help="::: ARGS, :::: FILES; none: stdin's lines")


def map_command(namespace: argparse.Namespace) -> int:
    import plait

    try:
        fn = load_function(namespace.function)
        if namespace.inputs and namespace.inputs[0] not in MARKERS:
            raise UsageError(f"{namespace.inputs[0]}: give inputs after ::: or :::: (or on stdin)")
        sources = _sources(namespace.inputs)
        check_readable(sources)
    except UsageError as error:
        print(f"plait map: {error}", file=sys.stderr)
        return 255
    separator = b"\0" if namespace.null else b"\n"
    inputs = arguments(sources, separator=separator, colsep=namespace.colsep)
    if namespace.json:
        inputs = (tuple(json.loads(value) for value in values) for values in inputs)
    show: Callable[[Any], str] = json.dumps if namespace.json else str
    failed = 0
    results = plait.map(
        _Star(fn),
        inputs,
        backend=namespace.backend,
        workers=namespace.workers,
        errors="return" if namespace.keep_going else "raise",
        trace=namespace.trace,
    )
    out = sys.stdout
    try:
        with results:
            for result in results:
                if namespace.keep_going and isinstance(result, BaseException):
                    failed += 1
                    _print_failure(result)
                    continue
                out.write(show(result) + "\n")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # whoever read the output stopped (``| head``): stop quietly
        from . import reader_gone

        return reader_gone()
    except Exception as error:  # the user's own exception, with the worker's traceback
        out.flush()
        _print_failure(error)
        return 1
    out.flush()
    return min(failed, 101)


class _Star:
    """Calls the function with an input's values as its arguments (picklable, unlike a
    lambda, and named after the function in a trace)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__qualname__ = getattr(fn, "__qualname__", "function")

    def __call__(self, values: tuple[Any, ...]) -> Any:
        return self.fn(*values)


def load_function(spec: str) -> Callable[..., Any]:
    module_name, _, name = spec.rpartition(":")
    if not module_name or not name:
        raise UsageError(f"{spec}: give MODULE:FUNCTION, for example mytools:checksum")
    if module_name.endswith(".py"):
        folder, file = os.path.split(os.path.abspath(module_name))
        if not os.path.exists(module_name):
            raise UsageError(f"{module_name}: no such file")
        sys.path.insert(0, folder)
        module_name = file.removesuffix(".py")
    elif "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # (as python -m does: modules here import)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"{module_name}: cannot import it ({error})") from None
    fn = module
    for part in name.split("."):
        fn = getattr(fn, part, None)  # type: ignore[assignment]
        if fn is None:
            raise UsageError(f"{spec}: {module_name} has no {name}")
    if not callable(fn):
        raise UsageError(f"{spec}: {name} is not a function")
    return fn


def _print_failure(error: BaseException) -> None:
    traceback.print_exception(error, file=sys.stderr)
