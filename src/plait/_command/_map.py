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
import functools
import importlib
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from . import _streams
from ._inputs import arguments
from ._options import MARKERS, CommandParser, _sources, check_colsep, check_readable
from ._usage import UsageError

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


def add_map_command(commands: argparse._SubParsersAction[CommandParser]) -> None:
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
    parser.set_defaults(parser=parser)
    # (-0 makes argparse take every negative number for an option: `-j -1` was "expected one
    # argument", not the count's own error. See _options.build_parser.)
    parser._has_negative_number_optionals.clear()


def _options_after_function(namespace: argparse.Namespace) -> None:
    """Read the options given after MODULE:FUNCTION, before the inputs (``plait map f.py:g
    --json ::: 1 2``): the inputs take the rest of the command line, as GNU parallel's command
    does, but a function has no options of its own to be mistaken for plait's."""
    inputs: list[str] = namespace.inputs
    at = next((i for i, arg in enumerate(inputs) if arg in MARKERS), len(inputs))
    if not at:
        return
    function = namespace.function
    namespace.parser.parse_args([*inputs[:at], function], namespace)
    if namespace.function != function:  # (a word that is no option took its place)
        raise UsageError(f"{namespace.function}: give inputs after ::: or :::: (or on stdin)")
    namespace.inputs = inputs[at:]


def map_command(namespace: argparse.Namespace) -> int:
    import plait

    try:
        _options_after_function(namespace)
        check_colsep(namespace.colsep)
        if namespace.workers is not None and namespace.workers < 1:
            raise UsageError(
                f"-j {namespace.workers}: give 1 or more workers, or leave -j out to let "
                "plait choose"
            )
        fn = load_function(namespace.function)
        sources = _sources(namespace.inputs)
        check_readable(sources)
    except UsageError as error:
        print(f"plait map: {error}", file=_streams.text(sys.stderr))
        return 255
    separator = b"\0" if namespace.null else b"\n"
    inputs: Iterator[Any] = arguments(sources, separator=separator, colsep=namespace.colsep)
    if namespace.json:
        inputs = (_decoded(number, values) for number, values in enumerate(inputs, 1))
    # (--json writes JSON: NaN and infinities, which JSON has not, are the item's failure.)
    show: Callable[[Any], str] = (
        functools.partial(json.dumps, allow_nan=False) if namespace.json else str
    )
    failed = 0
    try:
        results = plait.map(
            _star(fn),
            inputs,
            backend=namespace.backend,
            workers=namespace.workers,
            errors="return" if namespace.keep_going else "raise",
            trace=namespace.trace,
        )
    except (ValueError, TypeError) as error:  # -j 0, --backend nope: checked at the call
        print(f"plait map: {error}", file=_streams.text(sys.stderr))
        return 255
    out = _streams.text(sys.stdout)  # (started with it closed: the work still runs)
    if isinstance(sys.stdout, io.TextIOWrapper):
        # An input line that was not valid text was read with its bytes kept (surrogate
        # escapes): a result made of it is written back as those bytes, not refused.
        sys.stdout.reconfigure(errors="surrogateescape")
    try:
        with results:
            for number, result in enumerate(results, 1):
                if namespace.keep_going and isinstance(result, BaseException):
                    failed += 1
                    _print_failure(result)
                    continue
                try:
                    line = show(result) + "\n"
                except (TypeError, ValueError) as error:  # --json: a set, say
                    error.add_note(f"plait map: the result of input {number} cannot be written")
                    if not namespace.keep_going:
                        raise
                    failed += 1  # (that item's failure: the others still run and print)
                    _print_failure(error)
                    continue
                out.write(line)
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


def _star(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` called with an input's values as its arguments: an ``async def`` stays one
    (plait.map then runs it on an event loop: before, its coroutines were printed, never
    awaited)."""
    from .._validate import is_async

    if not is_async(fn):
        return _Star(fn)
    star = functools.partial(_star_async, _Star(fn))
    star.__qualname__ = getattr(fn, "__qualname__", "function")  # type: ignore[attr-defined]
    return star


async def _star_async(star: _Star, values: tuple[Any, ...] | _NotJson) -> Any:
    return await star(values)


class _Star:
    """Calls the function with an input's values as its arguments (picklable, unlike a
    lambda, and named after the function in a trace)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.__qualname__ = getattr(fn, "__qualname__", "function")

    def __call__(self, values: tuple[Any, ...] | _NotJson) -> Any:
        if isinstance(values, _NotJson):  # its item fails: with --keep-going, it is printed
            values.error.add_note(f"plait map: input {values.number} is not JSON")
            raise values.error
        return self.fn(*values)


@dataclass
class _NotJson:
    number: int
    values: tuple[str, ...]
    error: json.JSONDecodeError

    def __repr__(self) -> str:  # (a failure names its item so)
        return repr(self.values[0] if len(self.values) == 1 else self.values)


def _decoded(number: int, values: tuple[str, ...]) -> tuple[Any, ...] | _NotJson:
    try:
        return tuple(json.loads(value) for value in values)
    except json.JSONDecodeError as error:
        return _NotJson(number, values, error)


def load_function(spec: str) -> Callable[..., Any]:
    module_name, _, name = spec.rpartition(":")
    if not module_name or not name:
        raise UsageError(f"{spec}: give MODULE:FUNCTION, for example mytools:checksum")
    if module_name.endswith(".py"):
        module = _load_file(module_name)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # (as python -m does: modules here import)
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise UsageError(f"{module_name}: cannot import it ({error})") from None
    fn = module
    for part in name.split("."):
        if not hasattr(fn, part):
            raise UsageError(f"{spec}: {module_name} has no {name}")
        fn = getattr(fn, part)
    if not callable(fn):
        raise UsageError(f"{spec}: {name} is not a function")
    return fn


def _load_file(path: str) -> ModuleType:
    """The module of a ``.py`` file, loaded under a name of its own: a file named like a
    module already imported (json.py, queue.py) is neither mistaken for it nor put in its
    place. Its folder goes at the end of sys.path, where its own imports find their
    neighbours and no library's are shadowed; its functions travel to worker processes by
    value, since no worker could import it by that name."""
    import importlib.util

    import cloudpickle

    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    folder, file = os.path.split(path)
    if folder not in sys.path:
        sys.path.append(folder)
    name = "_plait_map_" + re.sub(r"\W", "_", file.removesuffix(".py"))
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot load it as a module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as error:
        del sys.modules[name]
        raise UsageError(f"{path}: cannot import it ({error})") from None
    cloudpickle.register_pickle_by_value(module)
    return module


def _print_failure(error: BaseException) -> None:
    traceback.print_exception(error, file=_streams.text(sys.stderr))
