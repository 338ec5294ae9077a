"""Ctrl-C and SIGTERM as a request to stop *between* training steps, so the step reached can be saved.

Python turns Ctrl-C into a ``KeyboardInterrupt`` raised wherever the program happens to be, possibly
half-way through an optimizer update (some parameters stepped, others not): such a state must not be
saved. ``StopOnSignal`` instead records the signal and lets the loop finish the step in progress; the
loop then writes a checkpoint and stops (``Trainer.train(handle_signals=True)``, which the CLI uses).

What the user sees:

- first SIGINT/SIGTERM: "stopping after step N", the step finishes, a checkpoint is written atomically;
- a second one while the step still runs: the step is abandoned at once (``StepAbandoned``, a
  ``KeyboardInterrupt``), nothing is written and the previous checkpoint stays as it was;
- a second one while the checkpoint is being written: ignored with a message; the write completes (the
  rename that makes it visible included) and then the run stops.

Handlers are installed only in the main thread (Python allows no other) and the previous ones are put
back on exit, so a program that embeds npgan keeps its own handling outside ``train()``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def exit_status(signum: int) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the program was (``signum`` says which)."""

    def __init__(self, signum: int):
        super().__init__(signal_name(signum))
        self.signum = signum


class StepAbandoned(Interrupted):
    """A second signal arrived before the checkpoint write began: the step in progress was dropped unsaved."""


@contextlib.contextmanager
def raise_on_signal():
    """SIGINT and SIGTERM raise ``Interrupted`` in the body (main thread only), so ``finally`` blocks and
    context managers (the run lock) clean up even on SIGTERM, whose default would end the process at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise Interrupted(signum)

    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    for signum in SIGNALS:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


class StopOnSignal:
    """``with StopOnSignal() as stop:`` ... ``if stop.requested: save and leave`` (see the module docstring).

    ``describe()`` gives the step in progress for the first message (a callable, read when the signal
    arrives). Outside the main thread nothing is installed and ``requested`` stays False.
    """

    def __init__(self, describe=lambda: "the step in progress", out=None):
        self.describe = describe
        self.out = out or sys.stderr
        self.signum: int | None = None
        self._saving = False
        self._previous: dict = {}
        self.installed = False

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
        self.installed = False
        return False

    @contextlib.contextmanager
    def saving(self):
        """Mark a checkpoint write: signals during it do not interrupt it."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    def _say(self, message: str) -> None:
        print(f"\nnpgan: {message}", file=self.out, flush=True)

    def _handle(self, signum, frame):
        name = signal_name(signum)
        if self.signum is None:
            self.signum = signum
            self._say(f"{name} received: finishing {self.describe()}, then writing a checkpoint "
                      "(send it again to stop at once without saving)")
        elif self._saving:
            self._say(f"{name} received again: the checkpoint is being written; stopping as soon as it is safe")
        else:
            self._say(f"{name} received again: abandoning the step in progress without saving")
            raise StepAbandoned(signum)
