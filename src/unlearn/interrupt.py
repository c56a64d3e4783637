"""Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT arrives. If that is
inside a finalizer (a ``__del__`` run by the garbage collector, a weakref callback), the exception is
printed as "Exception ignored" and dropped, and a long loop carries on. The CLI therefore runs each
command inside :func:`remembered_interrupts`, whose handler also remembers the signal, and the training
loop calls :func:`raise_if_interrupted` once per step, so an interrupt that was dropped is raised again at
the next step.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_interrupted = False


def _on_sigint(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


@contextmanager
def remembered_interrupts():
    """Within the block, SIGINT goes through the remembering handler; the previous handler is restored after.

    Only the main thread can set signal handlers; elsewhere the block runs unchanged.
    """
    global _interrupted
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _interrupted = False
    previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _interrupted = False


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived within the current `remembered_interrupts` block."""
    if _interrupted:
        raise KeyboardInterrupt
