import threading

import pytest

from jaxdeconv.app import overlap


def _stages(log, alive, peak, fail_train_at=None):
    lock = threading.Lock()

    def load(b):
        with lock:
            alive.add(b)
            peak[0] = max(peak[0], len(alive))
        log.append(("load", b))
        return b

    def train(b):
        if b == fail_train_at:
            raise RuntimeError(f"train {b}")
        log.append(("train", b))
        return b * 10

    def finish(b, r):
        assert r == b * 10
        log.append(("finish", b))
        with lock:
            alive.discard(b)

    return load, train, finish


@pytest.mark.parametrize("overlapped", [True, False])
def test_every_batch_goes_through_the_three_stages_in_order(overlapped):
    log, alive, peak = [], set(), [0]
    overlap.run_overlapped(range(7), *_stages(log, alive, peak), overlap=overlapped)
    for stage in ("load", "train", "finish"):
        assert [b for s, b in log if s == stage] == list(range(7))
    for b in range(7):  # per batch: loaded, then trained, then finished
        assert log.index(("load", b)) < log.index(("train", b)) < log.index(("finish", b))
    # Bounded memory: never more than three batches loaded and not yet finished.
    assert peak[0] <= (3 if overlapped else 1) and not alive


def test_loading_and_finishing_run_beside_training():
    """While batch 1 trains, batch 2 is read and batch 0 finished (on other threads)."""
    started = {s: threading.Event() for s in ("load2", "finish0")}

    def load(b):
        if b == 2:
            started["load2"].set()
        return b

    def train(b):
        if b == 1:  # both host stages must be able to run while this one waits
            assert started["load2"].wait(10) and started["finish0"].wait(10)
        return b

    def finish(b, r):
        if b == 0:
            started["finish0"].set()

    overlap.run_overlapped([0, 1, 2], load, train, finish)


def test_a_failure_stops_the_run_after_finishing_what_was_trained():
    log, alive, peak = [], set(), [0]
    with pytest.raises(RuntimeError, match="train 3"):
        overlap.run_overlapped(range(6), *_stages(log, alive, peak, fail_train_at=3))
    assert [b for s, b in log if s == "finish"] == [0, 1, 2]  # nothing trained is lost
    assert ("train", 4) not in log and ("finish", 3) not in log


def test_an_empty_run_does_nothing():
    called = []

    def stage(*args):
        called.append(args)

    for overlapped in (True, False):
        assert overlap.run_overlapped([], stage, stage, stage, overlap=overlapped) is None
    assert called == []
