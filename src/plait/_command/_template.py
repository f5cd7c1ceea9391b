"""A job's command line: the command with its replacement strings filled in, as GNU parallel's.

The command's words are joined with spaces, as they are (the shell reads them: ``$HOME`` and
pipes work), and each replacement string becomes its input, quoted for the shell so that it
stays one word whatever it holds. A command with no replacement string gets its inputs
appended. No command at all: the inputs are the commands, run as they are.

    {}    the input (several sources: their values, space-separated)
    {.}   without its extension          {/}   its basename          {//}  its directory
    {/.}  its basename without extension  {#}   the job's number      {%}   its job slot
    {n}   the n-th source's value (or column, with --colsep); also {n.} {n/} {n//} {n/.};
          a negative n counts from the last ({-1}: the last value)

Not there: ``{= perl expression =}`` (refused, rather than handed to the shell as it is).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from ._usage import UsageError

REPLACEMENT = re.compile(r"\{(?:(#)|(%)|(-?\d+|)(\.|/\.|//|/)?)\}")
PERL = re.compile(r"\{=.*?=\}", re.DOTALL)  # {= perl =}, {=2 perl =}

# Characters no POSIX shell treats specially: a word made of them needs no quotes.
_PLAIN = re.compile(r"[-_.+a-zA-Z0-9/]+")


def quote(value: str) -> str:
    """``value`` as one shell word: as it is where that is safe, else in single quotes (a
    single quote inside written as ``'"'"'``). The same text GNU parallel writes."""
    if _PLAIN.fullmatch(value):
        return value
    if not value:
        return "''"
    quoted = "'" + value.replace("'", "'\"'\"'") + "'"
    # (a value that begins or ends with a quote leaves an empty '' there: not needed)
    return quoted.removeprefix("''").removesuffix("''")


def without_extension(value: str) -> str:
    return re.sub(r"\.[^/.]*$", "", value)


def basename(value: str) -> str:
    return value.rpartition("/")[2]


def dirname(value: str) -> str:
    """POSIX ``dirname``: ``a/b/`` is ``a``, ``dir/`` and ``x`` are ``.``, ``/x`` is ``/``."""
    trimmed = value.rstrip("/")
    if not trimmed:
        return "/" if value else "."
    head = trimmed.rpartition("/")[0]
    if not head and "/" not in trimmed:
        return "."
    return head.rstrip("/") or "/"


_CHANGES: dict[str | None, Callable[[str], str]] = {
    None: lambda value: value,
    ".": without_extension,
    "/": basename,
    "//": dirname,
    "/.": lambda value: without_extension(basename(value)),
}


class Template:
    """The command, parsed once: ``render`` makes each job's command line."""

    def __init__(self, words: Sequence[str]) -> None:
        self.text = " ".join(words)
        if (perl := PERL.search(self.text)) is not None:
            raise UsageError(
                f"{perl.group()}: perl replacement strings ({{= ... =}}) are not supported; "
                "compute the value in the command (a shell's ${x%.gz}, say), or use GNU parallel"
            )
        self.has_replacements = REPLACEMENT.search(self.text) is not None

    def render(self, values: Sequence[str], seq: int, slot: int) -> str:
        if not self.text:  # the inputs are the commands
            return " ".join(values)
        if not self.has_replacements:
            return " ".join([self.text, *(quote(value) for value in values)])

        def replace(match: re.Match[str]) -> str:
            number, slot_mark, position, change = match.groups()
            if number:
                return str(seq)
            if slot_mark:
                return str(slot)
            transform = _CHANGES[change]
            if position:
                index = int(position)
                index = index - 1 if index > 0 else len(values) + index  # ({-1}: the last)
                if not 0 <= index < len(values):  # (no such column: nothing, not '')
                    return ""
                return quote(transform(values[index]))
            return " ".join(quote(transform(value)) for value in values)

        return REPLACEMENT.sub(replace, self.text)

    def simple_words(self, line: str) -> list[str] | None:
        """The words of ``line`` if the shell would run it as a plain program with plain
        arguments (no quoting, expansion, redirection or builtin that matters): then it can be
        started without a shell, which saves a shell's start per job."""
        words = line.split(" ")
        if not all(_PLAIN.fullmatch(word) for word in words):
            return None
        if words[0] in _SHELL_OWN or "=" in words[0]:
            return None
        return words


# Words a shell runs itself (or that behave differently as a program): never run directly.
_SHELL_OWN = frozenset([
    "!", ".", ":", "[", "alias", "bg", "break", "case", "cd", "command", "continue", "do",
    "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "fc", "fg", "for",
    "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf", "pwd", "read", "readonly",
    "return", "set", "shift", "test", "then", "times", "trap", "type", "ulimit", "umask",
    "unalias", "unset", "until", "wait", "while",
    # bash's (and zsh's) keywords and builtins that are also programs: `time` is /usr/bin/time
    "time", "[[", "function", "select", "coproc", "declare", "typeset", "let", "source",
])  # fmt: skip
