"""``plait run``'s jobs: started, watched and reported by one thread, with no thread per job
(input that may wait on its writer, such as stdin, is read on a thread of its own, so that
the jobs are watched meanwhile).

Each job is a process of its own process group (``_spawn``; a timeout, ``--halt now`` or
Ctrl-C ends the whole group: what the job started in the background too), its output in two
pipes that one ``poll`` loop reads while it runs, and its end seen through a ``pidfd`` in that
same loop (polled where the system has none). A job has ended when its process has: output a
background child writes later is not waited for.

Its output is written whole when it ends (``--group``, the default), so no two jobs' outputs
ever mix: in the order jobs end, or in input order with ``--keep-order`` (which never runs more
than a bounded distance ahead of the oldest unfinished job: memory stays flat however long the
input). ``--line-buffer`` writes whole lines as they come; ``--ungroup`` lets jobs write to
plait's own output directly (``_output``).
"""

from __future__ import annotations

import errno
import heapq
import math
import os
import resource
import select
import signal
import sys
import time
from collections.abc import Iterator
from typing import Any

from .._waits import cut
from . import _signals
from ._inputs import ReadOnAThread, may_wait
from ._job import Job
from ._joblog import JobLog
from ._options import Halt, RunOptions
from ._output import Output
from ._spawn import HAS_PIDFD, Spawner, signal_group
from ._template import Template
from ._usage import UsageError

TERM_GRACE = 0.2  # seconds between SIGTERM and SIGKILL to a job's process group
READ_SIZE = 65536


class Runner:
    """Runs the jobs of one ``plait run``; ``run()`` is its exit status."""

    def __init__(self, options: RunOptions, inputs: Iterator[tuple[str, ...]]) -> None:
        self.options = options
        self.template = Template(options.command)
        self._total = 0  # all the jobs, read first when --halt counts a share of them
        if options.halt is not None and options.halt.percent is not None:
            every = list(inputs)
            self._total, inputs = len(every), iter(every)
        self._inputs = enumerate(inputs, start=1)
        # (What may fail comes first: a shell that is not there, a log that cannot be
        # written. Nothing is left open then: no descriptor, no reading thread.)
        self._spawner = Spawner(self.template)
        self._output = Output(options.output, options.tag)
        try:
            # (A dry run, as GNU parallel's, writes no log: an old one is neither emptied nor
            # added to. With --resume it skips what that log says ran.)
            self._log = (
                JobLog.open(options, self._output.stdout)
                if options.joblog and not options.dry_run
                else None
            )
        except BaseException:
            self._spawner.close()
            raise
        self._skip = self._log.skip if self._log else JobLog.skipped(options)
        # Input that may wait on its writer (stdin, a pipe) is read on a thread: meanwhile
        # the loop goes on, ends jobs on time and writes what the ended ones wrote.
        self._reader = ReadOnAThread(self._inputs) if may_wait(options.sources) else None
        self._awaiting_input = False  # (the reader has none yet: the loop waits for it too)
        self._exhausted = False
        self._seen = 0  # the last input's number
        self._poll = select.poll()  # (a few descriptors per job: poll is the cheapest)
        if self._reader is not None:
            self._poll.register(self._reader.fd, select.POLLIN)
        # What each watched descriptor is: fd -> (its job, whether stdout; None: the pidfd).
        self._watched: dict[int, tuple[Job, bool | None]] = {}
        self._running: dict[int, Job] = {}  # by pid
        self._free_slots = list(range(1, options.jobs + 1))
        self._at_once = options.jobs  # (fewer if the open files allow fewer: _fewer_at_once)
        self._finished: dict[int, Job | None] = {}  # --keep-order: ended, not yet written
        self._next_to_write = 1
        self._stop_starting = False
        self._halt_status: int | None = None
        self._failed = 0
        self._succeeded = 0
        self._retry: list[Job] = []
        self._bar: Any = None
        self._warned_nul = False

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> int:
        if self.options.bar:
            from tqdm import tqdm

            self._bar = tqdm(unit="job", file=sys.stderr, dynamic_ncols=True)
        try:
            while True:
                self._start_jobs()
                if not self._running:
                    if self._exhausted or self._stop_starting:
                        break
                    if not self._awaiting_input:
                        continue
                self._wait(self._timeout())
                self._check_deadlines()
        except BaseException:
            self._end_all()  # Ctrl-C, SIGTERM, or a bug: no job is left running
            raise
        finally:
            if self._reader is not None:
                self._reader.close()
            if self._bar is not None:
                self._bar.close()
            if self._log is not None:
                self._log.close()
            self._spawner.close()
        if self._halt_status is not None:
            return self._halt_status
        halt = self.options.halt
        if halt is not None and halt.percent is not None:
            return self._failed_percent()  # (GNU parallel's: the share that failed)
        return min(self._failed, 101)

    def _start_jobs(self) -> None:
        window = max(64, 16 * self.options.jobs)  # --keep-order: how far ahead of the oldest
        while len(self._running) < self._at_once and not self._stop_starting:
            if self._retry:
                self._spawn(self._retry.pop(0))
                continue
            if self._exhausted:
                return
            if self.options.keep_order and self._seen - self._next_to_write >= window:
                return
            try:
                taken = next(self._inputs) if self._reader is None else self._reader.take()
            except StopIteration:
                self._exhausted = True
                return
            self._awaiting_input = taken is None
            if taken is None:
                return
            seq, args = taken
            self._seen = seq
            if any("\0" in arg for arg in args):
                args = self._without_nul(seq, args)
            if seq in self._skip:  # --resume: it ran before
                self._done_without_running(seq)
                continue
            command = self.template.render(args, seq, self._free_slots[0])
            job = Job(seq, args, command)
            if self.options.dry_run:  # (tagged with --tag, as GNU parallel's)
                line = command.encode(errors="surrogateescape") + b"\n"
                self._output.stdout.write(self._output.tagged(job, line))
                self._done_without_running(seq)
                self._succeeded += 1  # (as GNU parallel's: --halt done=/success= counts it)
                self._check_halt(job)
                continue
            self._spawn(job)

    def _without_nul(self, seq: int, args: tuple[str, ...]) -> tuple[str, ...]:
        """The input with each NUL written ``\\0``, as GNU parallel writes it: no command line
        can hold a NUL (exec would refuse the job). Said once, on stderr."""
        if not self._warned_nul:
            self._warned_nul = True
            self._output.warn(
                f"input {seq} has a NUL character, which no command line can hold: it is "
                "written \\0 (for NUL-separated input, give -0)"
            )
        return tuple(arg.replace("\0", "\\0") for arg in args)

    def _timeout(self) -> float | None:
        """How long the loop may wait: until the next deadline, if any."""
        wait: float | None = None if HAS_PIDFD else 0.005
        timeout = self.options.timeout
        if timeout is None and not any(job.killing for job in self._running.values()):
            return wait
        now = time.monotonic()
        for job in self._running.values():
            due = job.killing if job.killing else job.began + (timeout or 0.0)
            left = max(0.0, due - now)
            wait = left if wait is None else min(wait, left)
        return wait

    # -- a job's life -----------------------------------------------------------------------

    def _spawn(self, job: Job) -> None:
        try:
            pipes, spare = self._spawner.descriptors(self.options.output == "ungroup")
        except OSError as error:
            if error.errno not in (errno.EMFILE, errno.ENFILE):
                raise
            self._fewer_at_once()
            self._retry.insert(0, job)  # (first again: it starts when a job ends)
            return
        job.tries += 1
        job.slot = heapq.heappop(self._free_slots)
        if job.tries > 1 or "{%}" in self.template.text:  # (its slot may differ this time)
            job.command = self.template.render(job.args, job.seq, job.slot)
        if not pipes:  # (it writes to plait's own output: what plait wrote goes first)
            self._output.stdout.flush()
            self._output.stderr.flush()
        job.started = time.time()
        job.began = time.monotonic()
        _signals.hold()  # (a Ctrl-C meanwhile is raised once the job is in _running: ended)
        try:
            try:
                job.pid = self._spawner.start(job, pipes)
            finally:
                # (The write ends are the job's now; the spare's number is free for the pidfd.)
                for end in [*(write for _, write in pipes), *spare]:
                    os.close(end)
            if job.pid:
                self._running[job.pid] = job
        finally:
            _signals.let_go()
        if not job.pid:  # it could not start: it failed, as the shell's would (126, 127)
            for read, _ in pipes:
                os.close(read)
            heapq.heappush(self._free_slots, job.slot)
            self._finish(job)
            return
        for (fd, _), is_out in zip(pipes, (True, False), strict=False):
            os.set_blocking(fd, False)
            self._watch(fd, job, is_out)
            job.pipes[fd] = is_out
        if HAS_PIDFD:
            job.pidfd = os.pidfd_open(job.pid)
            self._watch(job.pidfd, job, None)

    def _fewer_at_once(self) -> None:
        """Out of file descriptors: run only as many jobs at once as the descriptors allow,
        and say so, as GNU parallel does."""
        # A job holds three descriptors while it runs (its pipes' read ends and its pidfd),
        # and four as it starts (both ends of its pipes): as many jobs as run now if one more
        # is free now (a start after a job's end then fits), else one fewer. (Without a pidfd
        # it holds two, so two more; with --ungroup, its pidfd alone, the same as it starts.)
        extra = 0 if self.options.output == "ungroup" else 1 if HAS_PIDFD else 2
        at_once = len(self._running) - (not self._spawner.descriptors_free(extra))
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if at_once < 1:
            raise UsageError(
                f"too few file descriptors to run a job (ulimit -n is {limit}): raise ulimit -n"
            )
        self._at_once = at_once
        self._output.warn(
            f"only enough file descriptors (ulimit -n {limit}) to run {at_once} jobs at "
            f"once, not {self.options.jobs} (raise ulimit -n for more)"
        )

    def _wait(self, timeout: float | None) -> None:
        # (--timeout 1e10 is legal, poll's int of milliseconds ends at 24.8 days: the loop
        # comes round and waits again, see ``_waits``.)
        ready = self._poll.poll(None if timeout is None else math.ceil(cut(timeout) * 1000))
        for fd, _ in ready:
            if self._reader is not None and fd == self._reader.fd:
                self._reader.woken()
                continue
            watched = self._watched.get(fd)
            if watched is None:  # (closed meanwhile, as its job ended)
                continue
            job, is_out = watched
            if is_out is None:
                self._reap(job)
            else:
                self._read(job, fd, is_out)
        if not HAS_PIDFD:  # (no pidfd to select on: look)
            for pid, job in list(self._running.items()):
                ended, status = os.waitpid(pid, os.WNOHANG)
                if ended:
                    self._ended(job, status)

    def _read(self, job: Job, fd: int, is_out: bool, *, drain: bool = False) -> bool:
        """Read from the pipe; False once there was nothing (at its end; or, with ``drain``,
        nothing more for now)."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return not drain
        if not data:
            self._close_pipe(job, fd)
            return False
        if is_out:
            job.out += data
            job.received += len(data)
        else:
            job.err += data
        if self.options.output == "line-buffer" and self._streams(job):
            self._output.lines(job, is_out, len(data))
        return True

    def _streams(self, job: Job) -> bool:
        """Whether ``--line-buffer`` writes the job's lines as they come: with
        ``--keep-order``, only the oldest job's (the later ones' wait for their turn)."""
        return not self.options.keep_order or job.seq == self._next_to_write

    def _watch(self, fd: int, job: Job, is_out: bool | None) -> None:
        self._poll.register(fd, select.POLLIN)
        self._watched[fd] = (job, is_out)

    def _unwatch(self, fd: int) -> None:
        self._poll.unregister(fd)
        del self._watched[fd]

    def _close_pipe(self, job: Job, fd: int) -> None:
        self._unwatch(fd)
        os.close(fd)
        del job.pipes[fd]

    def _reap(self, job: Job) -> None:
        _, status = os.waitpid(job.pid, 0)
        self._ended(job, status)

    def _ended(self, job: Job, status: int) -> None:
        # As GNU parallel records it: the signal that ended the job (0: it exited), its exit
        # value (0: a signal ended it); a job --timeout ended has -1, unless it exited with a
        # status of its own (one that traps SIGTERM and exits 3 has 3; one that exits 0, -1).
        if os.WIFSIGNALED(status):
            job.exitval, job.signal = 0, os.WTERMSIG(status)
        else:
            job.exitval, job.signal = os.WEXITSTATUS(status), 0
        if job.timed_out and not job.exitval:
            job.exitval = -1
        del self._running[job.pid]
        if job.pidfd >= 0:
            self._unwatch(job.pidfd)
            os.close(job.pidfd)
        for fd, is_out in list(job.pipes.items()):
            # What it wrote before it ended is in the pipe: all of it is read. A child it
            # left running may hold the pipe open: that is not waited for.
            while fd in job.pipes and self._read(job, fd, is_out, drain=True):
                pass
            if fd in job.pipes:
                self._close_pipe(job, fd)
        if job.timed_out or job.killing:
            signal_group(job.pid, signal.SIGKILL)  # what it left behind goes with it
        heapq.heappush(self._free_slots, job.slot)
        self._finish(job)

    def _check_deadlines(self) -> None:
        timeout = self.options.timeout
        now = time.monotonic()
        for job in list(self._running.values()):
            if job.killing and now >= job.killing:
                signal_group(job.pid, signal.SIGKILL)
            elif timeout is not None and not job.killing and now - job.began >= timeout:
                job.timed_out = True
                self._terminate(job)

    def _terminate(self, job: Job) -> None:
        job.killing = time.monotonic() + TERM_GRACE
        signal_group(job.pid, signal.SIGTERM)

    def _end_all(self) -> None:
        """End every running job's process group and wait for them: TERM, then KILL."""
        for job in self._running.values():
            signal_group(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE * 2
        for pid, job in list(self._running.items()):
            while not os.waitpid(pid, os.WNOHANG)[0]:
                if time.monotonic() > deadline:
                    signal_group(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                time.sleep(0.005)
            signal_group(pid, signal.SIGKILL)
            for fd in [*job.pipes, job.pidfd]:
                if fd >= 0:
                    os.close(fd)
        self._running.clear()

    # -- its end: retries, output, the log, --halt -------------------------------------------

    def _finish(self, job: Job) -> None:
        job.runtime = max(0.0, time.monotonic() - job.began)  # (logged when its output is)
        if job.halted:
            # As GNU parallel: a job --halt now ended writes neither its output nor a log line
            # (so --resume runs it again: it never ended by itself).
            self._done_without_running(job.seq)
            return
        if job.failed and job.tries < self.options.retries and not self._stop_starting:
            job.out.clear()
            job.err.clear()
            job.received = 0
            job.exitval = job.signal = 0
            job.timed_out, job.killing = False, 0.0
            self._retry.append(job)
            return
        if job.failed:
            self._failed += 1
        else:
            self._succeeded += 1
        if self._bar is not None:
            self._bar.update()
        if self.options.keep_order:
            self._finished[job.seq] = job
            self._write_in_order()
        else:
            self._hand_out(job)
        self._check_halt(job)

    def _done_without_running(self, seq: int) -> None:
        if self.options.keep_order:
            self._finished[seq] = None
            self._write_in_order()

    def _write_in_order(self) -> None:
        while self._next_to_write in self._finished:
            job = self._finished.pop(self._next_to_write)
            if job is not None:
                self._hand_out(job)
            self._next_to_write += 1
        if self.options.output == "line-buffer":  # the next job's turn: its lines so far
            for running in self._running.values():
                if running.seq == self._next_to_write:
                    self._output.lines(running, True)
                    self._output.lines(running, False)

    def _hand_out(self, job: Job) -> None:
        """The job's output, then its log line: as GNU parallel, in the order the output is
        written (with --keep-order, the jobs' order), so that ``--joblog -`` follows each
        job's output."""
        self._output.whole(job)
        if self._log is not None:
            self._log.write(job)

    def _check_halt(self, job: Job) -> None:
        halt: Halt | None = self.options.halt
        if halt is None or self._halt_status is not None:
            return
        if halt.on != "done" and job.failed != (halt.on == "fail"):
            return
        count = {"fail": self._failed, "success": self._succeeded}.get(
            halt.on, self._failed + self._succeeded
        )
        # The jobs it takes: a count, or a share of all the jobs (read first: see __init__),
        # reckoned as GNU parallel does, in floating point (so 7% of 100 jobs is
        # 7.000000000000001 of them: it takes 8; and 33% of 3 is less than one job).
        needed = halt.count if halt.percent is None else self._total * (halt.percent / 100)
        if count < needed:
            return
        # GNU parallel's exit status: 0 on success=; when it takes one job (fail=1, done=1,
        # or a share that comes to exactly one), that job's own; else, on fail= and done=,
        # the share that failed (of all the jobs) if a share is given, or how many did.
        if halt.on == "success":
            self._halt_status = 0
        elif needed == 1:
            self._halt_status = job.status
        elif halt.percent is not None:
            self._halt_status = self._failed_percent()
        else:
            self._halt_status = min(self._failed, 101)
        self._stop_starting = True
        if halt.now:
            for running in list(self._running.values()):
                running.halted = True
                self._terminate(running)

    def _failed_percent(self) -> int:
        # (In GNU parallel's order, in floating point: 11 of 20 is 55.00000000000001%, so 56.)
        return math.ceil(self._failed / max(1, self._total or self._seen) * 100)
