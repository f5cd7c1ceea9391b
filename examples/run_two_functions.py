"""Two functions on two threads, the classic first example, with plait.run.

plait.run starts each function on its own thread and returns when both have finished (if one
raised, the other would be cancelled and the error raised here).
"""

from __future__ import annotations

import sys
import time

import plait


def say(line: str) -> None:
    # One write per line: print() writes the text and the newline separately, so lines from
    # two threads could interleave.
    sys.stdout.write(line + "\n")


def print_numbers() -> int:
    for n in range(1, 6):
        say(f"number {n}")
        time.sleep(0.05)
    return 5


def print_letters() -> str:
    for letter in "abcde":
        say(f"letter {letter}")
        time.sleep(0.05)
    return "e"


if __name__ == "__main__":
    last_number, last_letter = plait.run(print_numbers, print_letters)  # results in order
    say("Both threads have finished.")
    say(f"the last number was {last_number}, the last letter {last_letter!r}")
