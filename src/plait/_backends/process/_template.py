"""The template process: a single-threaded process that forks worker processes on request.

Starting a fresh interpreter costs tens of milliseconds; forking costs one or two, but forking a
process that runs threads can hand the child a lock another thread held (and Python 3.12+ warns
about it). The template gives the speed of fork without that trap: it runs no threads of its
own, ever, so forking it is always safe. It is made once per program, the first time a process
pool starts, in one of two ways:

- forked from the program itself, if the program is single-threaded at that moment (counted in
  ``/proc/self/task``, which sees native threads too, such as OpenBLAS's): a few milliseconds,
  and its workers start with the program's modules already imported;
- otherwise started fresh (``python -c TEMPLATE_BOOTSTRAP``), as Python 3.14's forkserver is.

    program (any thread)                          template                     worker
    ────────────────────                          ────────                     ──────
    fork_worker(sock) ── request + descriptors ──► fork() ──────────────────► _child.main(sock)
         pid ◄──────────────── status pipe ◄──── pid
         exit code ◄────────── status pipe ◄──── waitpid() on SIGCHLD

A request carries the worker's socket, the status pipe's write end, and the program's current
standard output and error (so a worker prints where the program prints now), with the current
directory and environment. The template reaps its workers and writes each one's exit code (or
minus the signal that killed it) to its status pipe, which is what ``TemplateWorker.poll`` reads.
When the program ends (its end of the request socket closes), the template kills what workers
are left and exits.
"""

from __future__ import annotations

import gc
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from contextlib import suppress

from ..._waits import readable
from .._base import at_exit_last
from ._child import PLAIT_DIR
from ._launch import Signalled

TEMPLATE_BOOTSTRAP = (
    f"import sys; sys.path.insert(0, {PLAIT_DIR!r}); "
    "from plait._backends.process._template import serve; serve(int(sys.argv[1]))"
)
CODE = 8  # bytes of a pid or an exit code on a status pipe (signed, little-endian)
MAX_REQUEST = 1 << 20  # the environment travels with each request


# -- the program's side ------------------------------------------------------------------------


class TemplateGone(OSError):
    """The template process ended (killed from outside): a new one is made on the next use."""


class Template:
    """The program's handle on its template process."""

    def __init__(self) -> None:
        import cloudpickle  # noqa: F401  (the program needs it to send functions; the workers
        # need it to load them: imported before the fork, it is there in every worker at once)

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.forked = single_threaded()
        try:
            if self.forked:
                self.pid = _fork_template(theirs)
                self._proc: subprocess.Popen[bytes] | None = None
            else:
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", TEMPLATE_BOOTSTRAP, str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                )
                self.pid = self._proc.pid
        finally:
            theirs.close()
        self._sock = ours
        self._lock = threading.Lock()

    def fork_worker(self, worker_fd: int) -> TemplateWorker:
        """A new worker process talking over ``worker_fd`` (the caller closes its copy)."""
        try:
            cwd: str | None = os.getcwd()
        except OSError:  # the program's directory was removed: the worker stays where it is
            cwd = None
        request = pickle.dumps((cwd, dict(os.environ)))
        status_r, status_w = os.pipe()
        try:
            with self._lock:
                socket.send_fds(self._sock, [request], [worker_fd, status_w, 1, 2])
        except OSError as exc:  # EPIPE, ECONNRESET: the template is gone
            os.close(status_r)
            self._sock.close()  # so that template() makes a new one
            raise TemplateGone("plait: the template process that starts workers ended") from exc
        finally:
            os.close(status_w)
        pid = _read_code(status_r)
        if pid is None:  # the template is gone: it answered nothing
            os.close(status_r)
            self._sock.close()
            raise TemplateGone("plait: the template process that starts workers ended")
        return TemplateWorker(pid, status_r)

    def alive(self) -> bool:
        if self._sock.fileno() < 0:
            return False
        if self._proc is not None:
            return self._proc.poll() is None
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def close(self) -> None:
        """End the template (it kills any worker left) and wait for it."""
        self._sock.close()
        if self._proc is not None:
            self._proc.wait()
        else:
            with suppress(ChildProcessError):
                os.waitpid(self.pid, 0)

    def forget(self) -> None:
        """In a fork of the program: this template is the parent's, let go of it."""
        self._sock.close()


class TemplateWorker(Signalled):
    """A worker forked by the template, with the part of Popen's interface the backend uses.
    The template, its parent, reaps it and writes its exit code to the status pipe."""

    def __init__(self, pid: int, status_fd: int) -> None:
        self.pid = pid
        self._status = status_fd
        self.returncode: int | None = None

    def exit_descriptor(self) -> int | None:
        """The status pipe, which turns readable when the template reports the exit (a pidfd
        could name another process: the template may have reaped this one already)."""
        return None if self.returncode is not None else os.dup(self._status)

    def poll(self) -> int | None:
        if self.returncode is None and readable(self._status, 0):
            self._settle()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not readable(self._status, timeout):
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            self._settle()
        assert self.returncode is not None
        return self.returncode

    def _settle(self) -> None:
        code = _read_code(self._status)
        os.close(self._status)
        # No code: the template itself died, and took its workers with it.
        self.returncode = -signal.SIGKILL if code is None else code

    def __del__(self) -> None:
        if self.returncode is None:
            with suppress(OSError):
                os.close(self._status)


def single_threaded() -> bool:
    """Whether this process runs one thread, counting native threads that Python cannot see."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: assume the worst
        return False


def _fork_template(theirs: socket.socket) -> int:
    for stream in (sys.stdout, sys.stderr):  # or the template's workers would print it again
        with suppress(Exception):
            stream.flush()
    pid = os.fork()
    if pid:
        return pid
    try:  # the template: keep only its socket, never return into the program
        fd = theirs.fileno()
        _close_all_but(0, 1, 2, fd)
        gc.freeze()  # the program's objects: never scanned, so never copied, in the workers
        serve(fd)
    except BaseException:  # a bug in plait: say so (the program makes a new template)
        traceback.print_exc()
        os._exit(1)
    finally:
        os._exit(0)


def _read_code(fd: int) -> int | None:
    data = b""
    while len(data) < CODE:
        chunk = os.read(fd, CODE - len(data))
        if not chunk:
            return None
        data += chunk
    return int.from_bytes(data, "little", signed=True)


def _close_all_but(*keep: int) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with suppress(OSError):
                os.close(fd)


# -- the template's side -----------------------------------------------------------------------


def serve(fd: int) -> None:
    """The template's loop: fork a worker per request, report each one's end, exit at EOF."""
    import cloudpickle  # noqa: F401  (a template started fresh: once here, not in every worker)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the program's to handle
    signal.set_wakeup_fd(-1)  # the program's event loop may have set one (now closed)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    requests = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select below
    children: dict[int, int] = {}  # worker pid -> its status pipe
    # (poll, not select: a template started fresh keeps the program's number for its socket,
    # past 1023 in a program with many files open, which select refuses.)
    poller = select.poll()
    for watched in (requests.fileno(), wake_r):
        poller.register(watched, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if wake_r in ready:
            os.read(wake_r, 4096)
            _reap(children)
        if requests.fileno() in ready:
            try:
                request, fds, _, _ = socket.recv_fds(requests, MAX_REQUEST, 4)
            except OSError:
                request, fds = b"", []
            if not request:
                break  # the program is gone
            pid = _fork_worker(
                request, fds, [requests.fileno(), wake_r, wake_w, *children.values()]
            )
            for received in fds[:1] + fds[2:]:
                os.close(received)
            status = fds[1]
            os.write(status, pid.to_bytes(CODE, "little", signed=True))
            children[pid] = status
    for pid in children:  # the program ended without ending them: nobody will use them
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid, status_w in children.items():
        with suppress(ChildProcessError):
            _report(status_w, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    os._exit(0)


def _fork_worker(request: bytes, fds: list[int], template_fds: list[int]) -> int:
    worker_fd, status_w, stdout, stderr = fds
    cwd, env = pickle.loads(request)
    pid = os.fork()
    if pid:
        return pid
    try:  # the worker
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        # A template forked from the program has its sys.stdout, which may be anything by then
        # (a capture, a notebook's stream): a worker prints to the descriptors, as a fresh one.
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        for fd in (*template_fds, status_w, stdout, stderr):
            with suppress(OSError):
                os.close(fd)
        if cwd is not None:
            with suppress(OSError):  # a directory removed since: stay where the template is
                os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _reseed()
        from ._child import main

        main(worker_fd)
    finally:
        os._exit(1)


def _reseed() -> None:
    """Fresh random state, as a fresh interpreter has: ``random`` reseeds itself after a fork,
    NumPy's global generator does not (its workers would all draw the same numbers)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        with suppress(Exception):
            numpy_random.seed()


def _reap(children: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_w = children.pop(pid, None)
        if status_w is not None:
            _report(status_w, os.waitstatus_to_exitcode(status))


def _report(status_w: int, code: int) -> None:
    with suppress(OSError):  # the program stopped listening: nothing to tell
        os.write(status_w, code.to_bytes(CODE, "little", signed=True))
    os.close(status_w)


# -- one template per program ------------------------------------------------------------------

_template: Template | None = None
_template_lock = threading.Lock()


def template() -> Template:
    """This program's template, made (or made again, if it died) on first use."""
    global _template
    with _template_lock:
        if _template is None or not _template.alive():
            if _template is not None:
                _template.close()
            _template = Template()
        return _template


def close_template() -> None:
    """At exit: end the template (after the pools ended their workers)."""
    global _template
    with _template_lock:
        if _template is not None:
            _template.close()
            _template = None


def _forget_in_child() -> None:
    global _template, _template_lock
    _template_lock = threading.Lock()
    if _template is not None:
        _template.forget()
        _template = None


os.register_at_fork(after_in_child=_forget_in_child)
at_exit_last(close_template)
