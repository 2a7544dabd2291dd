"""shared.gcpolicy: a service process freezes what its start made and collects young objects less often;
every collection's pause is counted."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from shared import gcpolicy


@pytest.fixture
def collector() -> Iterator[None]:
    threshold, callbacks = gc.get_threshold(), list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks
    gcpolicy._pending.clear()


def pauses(generation: int) -> float:
    return REGISTRY.get_sample_value("helpdesk_gc_pause_seconds_sum", {"generation": str(generation)}) or 0.0


def test_settle_freezes_the_live_objects_and_raises_the_young_threshold(collector: None) -> None:
    _, older, oldest = gc.get_threshold()
    gc.unfreeze()
    gcpolicy.settle(20_000)
    assert gc.get_freeze_count() > 1000
    assert REGISTRY.get_sample_value("helpdesk_gc_frozen_objects") == gc.get_freeze_count()
    assert gc.get_threshold() == (20_000, older, oldest)


def test_zero_keeps_the_threshold(collector: None) -> None:
    before = gc.get_threshold()
    gcpolicy.settle(0)
    assert gc.get_threshold() == before


def test_every_collection_is_timed(collector: None) -> None:
    gcpolicy.count_pauses()
    gcpolicy.count_pauses()  # once per process, however often asked
    assert gc.callbacks.count(gcpolicy._timed) == 1
    before = pauses(2), pauses(0)
    gc.collect()
    gc.collect(0)
    assert pauses(2) > before[0] and pauses(0) > before[1]


def test_only_a_process_whose_entry_point_asked_is_settled(collector: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    gcpolicy.started()  # a test running a service in-process: the collector as it is
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == before
    gcpolicy.on_start(15_000)
    assert gc.get_threshold() == before  # not before the service has started
    gcpolicy.started()
    assert gc.get_threshold()[0] == 15_000 and gc.get_freeze_count() > 0
    gc.unfreeze()
    gcpolicy.started()  # once
    assert gc.get_freeze_count() == 0
