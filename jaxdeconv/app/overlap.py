"""Overlapping the stages of a many-image run, so the accelerator does not wait for the host.

A run is a sequence of batches, each going through three stages: ``load`` (read and decode the
files, on the host), ``train`` (the networks, on the accelerator) and ``finish`` (final kernel,
non-blind step, writing files). :func:`run_overlapped` trains batch ``i`` on the calling thread
while one host thread loads batch ``i + 1`` and another finishes batch ``i - 1``. At most three
batches are alive at once (the one training, the one read ahead, the one finishing), so memory
is bounded by the batch size, not by the number of inputs.

Finishing happens in batch order. An exception in any stage stops the run after the work
already started has ended (a batch being finished is finished: its outputs are not lost) and is
raised to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

B = TypeVar("B")
L = TypeVar("L")


def run_overlapped(
    batches: Sequence[B],
    load: Callable[[B], L],
    train: Callable[[L], Any],
    finish: Callable[[L, Any], None],
    *,
    overlap: bool = True,
) -> None:
    """Runs ``finish(loaded, train(loaded))`` with ``loaded = load(batch)`` for every batch.

    Args:
      batches: small descriptions of the batches (e.g. lists of paths), in order.
      load: batch -> loaded batch (host work; runs on a reader thread).
      train: loaded batch -> results (runs on the calling thread).
      finish: (loaded batch, results) -> None (host work; runs on a finisher thread, in order).
      overlap: ``False`` runs the three stages one after the other on the calling thread.
    """
    if not overlap:
        for batch in batches:
            loaded = load(batch)
            finish(loaded, train(loaded))
        return
    if not batches:
        return
    with (
        ThreadPoolExecutor(1, thread_name_prefix="jaxdeconv-load") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="jaxdeconv-finish") as finisher,
    ):
        ahead: Future | None = reader.submit(load, batches[0])
        finishing: Future | None = None
        try:
            for i in range(len(batches)):
                loaded = ahead.result()
                ahead = reader.submit(load, batches[i + 1]) if i + 1 < len(batches) else None
                results = train(loaded)
                if finishing is not None:
                    finishing.result()  # in order, and never more than one batch behind
                finishing = finisher.submit(finish, loaded, results)
                del loaded, results
            finishing.result()
        finally:
            if ahead is not None:
                ahead.cancel()  # a read-ahead not yet started is not needed any more
