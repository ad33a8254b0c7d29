"""Interpreter settings for a run: made on entry, put back on the last exit, and never
overriding what the user chose."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from vmkit.core.interpreter import SWITCH_INTERVAL_S, YOUNG_THRESHOLD, tuned_for_io


@pytest.fixture(autouse=True)
def _defaults():
    """Each test starts from CPython's defaults and gets them back, whatever it changed."""
    saved = sys.getswitchinterval(), gc.get_threshold(), gc.isenabled()
    sys.setswitchinterval(0.005)
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    yield
    gc.unfreeze()
    sys.setswitchinterval(saved[0])
    gc.set_threshold(*saved[1])
    (gc.enable if saved[2] else gc.disable)()


def test_settings_hold_inside_and_are_put_back_after():
    with tuned_for_io():
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 1000  # the objects alive on entry
    assert sys.getswitchinterval() == pytest.approx(0.005)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_a_failing_block_puts_them_back_too():
    with pytest.raises(RuntimeError), tuned_for_io():
        raise RuntimeError("boom")
    assert sys.getswitchinterval() == pytest.approx(0.005) and gc.get_freeze_count() == 0


def test_overlapping_runs_keep_them_until_the_last_one_ends():
    first_in, second_done = threading.Event(), threading.Event()
    seen: list[float] = []

    def second() -> None:
        first_in.wait()
        with tuned_for_io():
            pass
        seen.append(sys.getswitchinterval())  # the first run is still inside
        second_done.set()

    worker = threading.Thread(target=second)
    worker.start()
    with tuned_for_io():
        first_in.set()
        second_done.wait(5)
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert gc.get_freeze_count() > 0
    worker.join()
    assert seen == [pytest.approx(SWITCH_INTERVAL_S)]
    assert sys.getswitchinterval() == pytest.approx(0.005) and gc.get_freeze_count() == 0


def test_the_users_own_choices_are_left_alone():
    sys.setswitchinterval(0.0001)  # already shorter
    gc.set_threshold(50_000, 5, 5)  # already higher
    gc.freeze()  # the user's own frozen objects
    frozen = gc.get_freeze_count()
    with tuned_for_io():
        assert sys.getswitchinterval() == pytest.approx(0.0001)
        assert gc.get_threshold() == (50_000, 5, 5)
    assert gc.get_freeze_count() > frozen // 2  # not unfrozen by us (some were freed since)
    assert sys.getswitchinterval() == pytest.approx(0.0001)


def test_a_change_made_meanwhile_is_kept():
    with tuned_for_io():
        sys.setswitchinterval(0.002)
        gc.set_threshold(3000, 10, 10)
    assert sys.getswitchinterval() == pytest.approx(0.002)
    assert gc.get_threshold() == (3000, 10, 10)


def test_collection_turned_off_stays_off():
    gc.disable()
    gc.set_threshold(0)
    with tuned_for_io():
        assert gc.get_threshold()[0] == 0 and gc.get_freeze_count() == 0
    assert not gc.isenabled()


def test_disabled_changes_nothing():
    with tuned_for_io(enabled=False):
        assert sys.getswitchinterval() == pytest.approx(0.005)
        assert gc.get_threshold() == (700, 10, 10) and gc.get_freeze_count() == 0
