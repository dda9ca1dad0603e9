"""Tracking: an object is announced once while it stays in view; N of M confirmation; off-delay."""

from __future__ import annotations

import pytest

from custom_components.coral_vision.engine.camera.tracking import ObjectTracker
from custom_components.coral_vision.engine.results import BBox, Detection


def det(label: str = "person", x: float = 100) -> Detection:
    return Detection(label, 0, 0.9, BBox(x, 100, x + 100, 300))


def test_an_object_staying_in_view_is_new_only_once() -> None:
    tracker = ObjectTracker()
    first = tracker.update([det()], now=0)
    assert first.new == (det(),)
    assert first.active_labels == {"person"}
    for t in range(1, 5):
        update = tracker.update([det(x=100 + 5 * t)], now=t)  # moving a little
        assert update.new == ()
        assert len(update.confirmed) == 1


def test_a_second_object_of_the_same_label_is_new() -> None:
    tracker = ObjectTracker()
    tracker.update([det(x=100)], now=0)
    update = tracker.update([det(x=100), det(x=600)], now=1)
    assert update.new == (det(x=600),)


def test_an_object_that_leaves_and_returns_is_new_again() -> None:
    tracker = ObjectTracker()
    tracker.update([det()], now=0)
    gone = tracker.update([], now=1)
    assert gone.cleared_labels == {"person"}
    assert tracker.update([det()], now=2).new == (det(),)


def test_confirmation_needs_n_of_the_last_m_frames() -> None:
    tracker = ObjectTracker(confirm_frames=2, confirm_window=3)
    assert tracker.update([det()], now=0).new == ()
    assert tracker.update([], now=1).confirmed == ()
    confirmed = tracker.update([det()], now=2)
    assert confirmed.new == (det(),)
    assert confirmed.active_labels == {"person"}


def test_a_single_false_positive_never_confirms() -> None:
    tracker = ObjectTracker(confirm_frames=2, confirm_window=3)
    tracker.update([det()], now=0)
    for t in range(1, 6):
        update = tracker.update([], now=t)
        assert update.new == ()
        assert update.confirmed == ()


def test_off_delay_keeps_the_label_active_then_clears_it() -> None:
    tracker = ObjectTracker(off_delay=10)
    tracker.update([det()], now=0)
    assert tracker.update([], now=5).active_labels == {"person"}
    assert tracker.next_expiry() == 10
    assert tracker.expire(now=9) == frozenset()
    assert tracker.expire(now=11) == {"person"}
    assert tracker.active_labels(now=11) == frozenset()


def test_a_label_never_clears_while_its_object_is_in_view() -> None:
    # Frames further apart than the off-delay: still one object, never cleared.
    tracker = ObjectTracker(off_delay=0)
    assert tracker.update([det()], now=0).new == (det(),)
    assert tracker.next_expiry() is None
    for t in (5, 10, 15):
        assert tracker.expire(now=t - 1) == frozenset()
        update = tracker.update([det()], now=t)
        assert update.new == ()
        assert update.cleared_labels == frozenset()
        assert update.active_labels == {"person"}


def test_cleared_and_detected_pair_up_with_a_confirmation_window() -> None:
    # Seen, missed once (still followed within the window), seen: no clear, no new event.
    tracker = ObjectTracker(confirm_frames=1, confirm_window=3, off_delay=0)
    events: list[str] = []
    for t, frame in enumerate([[det()], [], [det()], [], [], [], [det()]]):
        update = tracker.update(frame, now=t)
        events += [f"new {d.label}" for d in update.new]
        events += [f"cleared {label}" for label in update.cleared_labels]
    assert events == ["new person", "cleared person", "new person"]


def test_labels_are_tracked_apart() -> None:
    tracker = ObjectTracker()
    update = tracker.update([det("person"), det("dog")], now=0)
    assert {d.label for d in update.new} == {"person", "dog"}
    update = tracker.update([det("dog")], now=1)
    assert update.cleared_labels == {"person"}
    assert update.active_labels == {"dog"}


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="confirm_frames"):
        ObjectTracker(confirm_frames=3, confirm_window=2)
