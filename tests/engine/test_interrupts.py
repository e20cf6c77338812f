"""Ctrl-C handling: it interrupts the objective once, and never a store write."""

from __future__ import annotations

import pytest

from autotweak.engine._loop import _Interrupts


def test_first_ctrl_c_interrupts_the_objective_a_second_does_not_cut_the_recording():
    interrupts = _Interrupts()
    interrupts.enter_objective()
    with pytest.raises(KeyboardInterrupt):
        interrupts.handler(2, None)
    interrupts.handler(2, None)  # arrives while the interrupted trial is being recorded
    assert interrupts.stop_requested


def test_ctrl_c_outside_the_objective_only_asks_to_stop():
    interrupts = _Interrupts()
    interrupts.handler(2, None)
    assert interrupts.stop_requested


def test_ctrl_c_during_a_store_write_is_held_until_the_write_is_done():
    interrupts = _Interrupts()
    interrupts.enter_objective()
    with pytest.raises(KeyboardInterrupt), interrupts.critical():
        interrupts.handler(2, None)  # held: no exception inside the write
        assert interrupts.pending
    assert interrupts.raised and not interrupts.pending
