"""The guard's mutex (`limits.mutex.TokenLock`): the hot path takes it by popping its token and
never waits; every other user waits in `acquire`. No two holders ever overlap, whichever way
each took it, with the interpreter switching threads inside the held sections."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from tollmeter.limits import mutex as mutex_module
from tollmeter.limits.mutex import TokenLock


class Section:
    """A counter updated by read, yield, write (lost updates without the lock), and how many
    threads are inside at once."""

    def __init__(self) -> None:
        self.count = 0
        self.inside = 0
        self.most_inside = 0

    def run(self) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        value = self.count
        time.sleep(0)  # hand the interpreter to another thread while held
        self.count = value + 1
        self.inside -= 1


def hot_path(lock: TokenLock, section: Section) -> bool:
    """As `Guard.admit_plain`: pop the token or step aside; True when it ran the section."""
    tokens = lock.tokens
    try:
        tokens.pop()
    except IndexError:
        return False
    try:
        section.run()
    finally:
        tokens.append(True)
    return True


@pytest.fixture
def switchy():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch between almost any two statements
    yield
    sys.setswitchinterval(interval)


def test_hot_path_and_waiting_holders_never_overlap(switchy) -> None:
    lock, section = TokenLock(), Section()
    runs = [0] * 8
    per_thread = 400

    def hot(i: int) -> None:
        for _ in range(per_thread):
            if hot_path(lock, section):
                runs[i] += 1
            else:  # stepped aside: the slow way waits for the lock
                with lock:
                    section.run()
                runs[i] += 1

    def slow(i: int) -> None:
        for _ in range(per_thread):
            lock.acquire()
            try:
                section.run()
            finally:
                lock.release()
            runs[i] += 1

    threads = [threading.Thread(target=hot if i % 2 else slow, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert section.most_inside == 1
    assert section.count == sum(runs) == 8 * per_thread
    assert lock.tokens == [True] and not lock.locked() and not lock._turn.locked()


def test_a_waiter_takes_the_lock_when_the_hot_path_gives_it_back() -> None:
    lock = TokenLock()
    lock.tokens.pop()  # a hot-path holder
    assert lock.locked()
    took = threading.Event()

    def waiter() -> None:
        with lock:
            took.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not took.wait(0.05)  # it waits while the token is out
    lock.tokens.append(True)
    assert took.wait(10)
    thread.join(10)
    assert lock.tokens == [True] and not lock._turn.locked()


def test_the_hot_path_steps_aside_while_a_waiting_user_holds_it() -> None:
    lock, section = TokenLock(), Section()
    with lock:
        assert lock.locked()
        assert not hot_path(lock, section) and section.count == 0
    assert hot_path(lock, section) and section.count == 1


def test_an_interrupted_wait_leaves_the_lock_as_it_was(monkeypatch) -> None:
    lock = TokenLock()
    lock.tokens.pop()  # a hot-path holder

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mutex_module, "_sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lock.acquire()
    monkeypatch.undo()
    assert not lock._turn.locked() and lock.tokens == []
    lock.tokens.append(True)  # the holder gives it back: free again
    with lock:
        assert lock.locked()
    assert lock.tokens == [True]
