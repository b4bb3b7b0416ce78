"""Counting semaphores shared by every gunicorn worker, that a dead worker cannot leak.

A System V semaphore set, driven through the C library with ctypes: ``semtimedop`` waits with a
timeout and with the GIL released (ctypes releases it around every foreign call), and ``SEM_UNDO``
makes the kernel give back whatever a process still holds when it dies, SIGKILL included — so a
crashed worker can never shrink the server's inference capacity. Python's own cross-process
semaphores (``multiprocessing``, POSIX ``sem_open``) have no such undo; the ``sysv_ipc`` package has
it, but its published wheels are built without ``semtimedop`` and so cannot wait with a timeout.

The set is made once in the gunicorn master (``create``); the workers, forked from it, open it by
its id (``SharedSemaphores(semid)``). ``ThreadSemaphores`` is the same interface for one process
(``flask run``, the test client). No Flask here.

A set can vanish under a running server: systemd's ``RemoveIPC=yes`` (logind's default) deletes a
user's sets when their last session ends, and ``ipcrm -s`` deletes one by hand. The kernel then
answers EIDRM (to a waiter) or EINVAL (to the next call), which ``SetRemoved`` names; a busy set
answers EAGAIN, which is only "not now".
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import threading
import time
from typing import Protocol

# <sys/ipc.h>, <sys/sem.h> on Linux (the same values on every Linux architecture).
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_NOWAIT = 0o4000
IPC_RMID = 0
GETVAL = 12
SETVAL = 16
SEM_UNDO = 0x1000


class _SemBuf(ctypes.Structure):
    _fields_ = [("sem_num", ctypes.c_ushort), ("sem_op", ctypes.c_short), ("sem_flg", ctypes.c_short)]


class _TimeSpec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc: ctypes.CDLL | None = None


def _c() -> ctypes.CDLL:
    """Return the C library with the semaphore calls typed (loaded on first use)."""
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.semget.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        libc.semtimedop.argtypes = [ctypes.c_int, ctypes.POINTER(_SemBuf), ctypes.c_size_t,
                                    ctypes.POINTER(_TimeSpec)]
        libc.semctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        _libc = libc
    return _libc


class Semaphores(Protocol):
    """A few numbered counting semaphores."""

    def acquire(self, index: int, timeout: float | None) -> bool:
        """Take one unit of semaphore ``index``; wait at most ``timeout`` s (0: do not wait). True if taken."""

    def release(self, index: int) -> None:
        """Give one unit of semaphore ``index`` back."""

    def value(self, index: int) -> int:
        """Return how many units of semaphore ``index`` are free now."""


class SetRemoved(OSError):
    """The semaphore set is gone: removed while in use (EIDRM/EINVAL), not merely busy (EAGAIN)."""

    def __init__(self, semid: int, error: int) -> None:
        self.semid = semid
        self.reason = f"the semaphore set {semid} was removed (systemd RemoveIPC? an ipcrm?)"
        super().__init__(error, self.reason)

    def __str__(self) -> str:
        return self.reason


def _gone(error: int) -> bool:
    """Tell whether a semaphore call's errno means the set no longer exists."""
    return error in (errno.EIDRM, errno.EINVAL)


def create(values: list[int]) -> int:
    """Make a new private semaphore set holding ``values``; return its id (for the workers' environment)."""
    libc = _c()
    semid = libc.semget(IPC_PRIVATE, len(values), IPC_CREAT | 0o600)
    if semid < 0:
        raise OSError(ctypes.get_errno(), "semget: " + os.strerror(ctypes.get_errno()))
    for index, value in enumerate(values):
        if libc.semctl(semid, index, SETVAL, value) < 0:
            error = ctypes.get_errno()
            remove(semid)
            raise OSError(error, "semctl SETVAL: " + os.strerror(error))
    return int(semid)


def remove(semid: int) -> None:
    """Delete a semaphore set (waiters get EIDRM); a set already gone is fine."""
    _c().semctl(semid, 0, IPC_RMID, 0)


class SharedSemaphores:
    """A System V semaphore set opened by id; every change is undone by the kernel if this process dies."""

    def __init__(self, semid: int) -> None:
        if not self.exists(semid):
            raise SetRemoved(semid, errno.EINVAL)
        self.semid = semid

    def acquire(self, index: int, timeout: float | None) -> bool:
        """Take one unit, waiting with the GIL released; retry after a signal with the time left."""
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            op = _SemBuf(index, -1, SEM_UNDO | (IPC_NOWAIT if timeout is not None and timeout <= 0 else 0))
            wait = None
            if deadline is not None and not op.sem_flg & IPC_NOWAIT:
                left = max(0.0, deadline - time.monotonic())
                wait = ctypes.pointer(_TimeSpec(int(left), int((left % 1) * 1e9)))
            if _c().semtimedop(self.semid, ctypes.byref(op), 1, wait) == 0:
                return True
            error = ctypes.get_errno()
            if error == errno.EAGAIN:  # not free (IPC_NOWAIT) or the timeout ran out
                return False
            if _gone(error):
                raise SetRemoved(self.semid, error)
            if error != errno.EINTR:
                raise OSError(error, "semtimedop: " + os.strerror(error))

    def release(self, index: int) -> None:
        """Give one unit back (undo-tracked, so the kernel's tally for this process returns to zero).

        A set that is gone took its counts and undo records with it: there is nothing to give back.
        """
        op = _SemBuf(index, 1, SEM_UNDO)
        while _c().semtimedop(self.semid, ctypes.byref(op), 1, None) != 0:
            error = ctypes.get_errno()
            if _gone(error):
                return
            if error != errno.EINTR:
                raise OSError(error, "semtimedop: " + os.strerror(error))

    @staticmethod
    def exists(semid: int) -> bool:
        """Tell whether semaphore set ``semid`` still exists."""
        return int(_c().semctl(semid, 0, GETVAL, 0)) >= 0 or not _gone(ctypes.get_errno())

    def value(self, index: int) -> int:
        """Return the free units of semaphore ``index``; raise ``SetRemoved`` when the set is gone."""
        value = int(_c().semctl(self.semid, index, GETVAL, 0))
        if value < 0:
            error = ctypes.get_errno()
            if _gone(error):
                raise SetRemoved(self.semid, error)
            raise OSError(error, "semctl GETVAL: " + os.strerror(error))
        return value


class ThreadSemaphores:
    """The same interface for the threads of one process."""

    def __init__(self, values: list[int]) -> None:
        self._values = list(values)
        self._condition = threading.Condition()

    def acquire(self, index: int, timeout: float | None) -> bool:
        """Take one unit of semaphore ``index``, waiting at most ``timeout`` s."""
        with self._condition:
            if not self._condition.wait_for(lambda: self._values[index] > 0,
                                            None if timeout is None else max(0.0, timeout)):
                return False
            self._values[index] -= 1
            return True

    def release(self, index: int) -> None:
        """Give one unit of semaphore ``index`` back."""
        with self._condition:
            self._values[index] += 1
            self._condition.notify_all()

    def value(self, index: int) -> int:
        """Return the free units of semaphore ``index``."""
        with self._condition:
            return self._values[index]
