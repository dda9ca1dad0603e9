"""Follow matching objects across frames: confirmation, new objects, cleared labels."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import count

from ..results import Detection


@dataclass(slots=True)
class _Track:
    """One object followed across frames."""

    id: int
    detection: Detection
    hits: deque[bool]
    announced: bool = False


@dataclass(frozen=True, slots=True)
class TrackUpdate:
    """What one frame changed."""

    confirmed: tuple[Detection, ...]
    new: tuple[Detection, ...]
    active_labels: frozenset[str]
    cleared_labels: frozenset[str]


@dataclass(slots=True)
class ObjectTracker:
    """Confirms objects seen in `confirm_frames` of the last `confirm_window` frames.

    An object is announced once, when first confirmed; it stays the same object while it keeps
    overlapping (IoU) a detection of its label, and is forgotten after a whole window unseen. A
    label is active while one of its announced objects is still followed, and until `off_delay`
    seconds after it was last seen; so each label's clearing follows the announcements of its
    objects, never while one of them is in view.
    """

    confirm_frames: int = 1
    confirm_window: int = 1
    off_delay: float = 0.0
    iou_match: float = 0.3
    _tracks: list[_Track] = field(default_factory=list)
    _last_seen: dict[str, float] = field(default_factory=dict)
    _active: frozenset[str] = frozenset()
    _ids: count[int] = field(default_factory=count)

    def __post_init__(self) -> None:
        """Check the window."""
        if not 1 <= self.confirm_frames <= self.confirm_window:
            raise ValueError("confirm_frames must be between 1 and confirm_window")

    def update(self, matches: Sequence[Detection], now: float) -> TrackUpdate:
        """Take one frame's matching detections, seen at time `now` (seconds)."""
        unmatched = list(matches)
        for track in self._tracks:
            best = self._best_match(track, unmatched)
            track.hits.append(best is not None)
            if best is not None:
                track.detection = best
                unmatched.remove(best)
        for detection in unmatched:
            hits: deque[bool] = deque([True], maxlen=self.confirm_window)
            self._tracks.append(_Track(next(self._ids), detection, hits))
        self._tracks = [t for t in self._tracks if any(t.hits)]

        confirmed: list[Detection] = []
        new: list[Detection] = []
        for track in self._tracks:
            if sum(track.hits) < self.confirm_frames:
                continue
            if track.hits[-1]:
                confirmed.append(track.detection)
                self._last_seen[track.detection.label] = now
            if not track.announced:
                track.announced = True
                new.append(track.detection)
        cleared = self.expire(now)
        return TrackUpdate(tuple(confirmed), tuple(new), self._active, cleared)

    def active_labels(self, now: float) -> frozenset[str]:
        """Labels with an announced object still followed, or seen within the off-delay."""
        followed = self._followed_labels()
        return frozenset(
            label
            for label, seen in self._last_seen.items()
            if label in followed or now - seen <= self.off_delay
        )

    def expire(self, now: float) -> frozenset[str]:
        """Forget labels whose objects are gone and whose off-delay has passed; return them."""
        followed = self._followed_labels()
        for label in [
            lbl
            for lbl, seen in self._last_seen.items()
            if lbl not in followed and now - seen > self.off_delay
        ]:
            del self._last_seen[label]
        active = self.active_labels(now)
        cleared, self._active = self._active - active, active
        return cleared

    def next_expiry(self) -> float | None:
        """When the next active label clears if nothing more is seen (None: nothing pending)."""
        followed = self._followed_labels()
        pending = [seen for label, seen in self._last_seen.items() if label not in followed]
        return min(pending) + self.off_delay if pending else None

    def _followed_labels(self) -> frozenset[str]:
        """Labels of announced objects still followed."""
        return frozenset(t.detection.label for t in self._tracks if t.announced)

    def _best_match(self, track: _Track, candidates: Sequence[Detection]) -> Detection | None:
        """The candidate of the track's label overlapping it most, if enough."""
        best: Detection | None = None
        best_iou = self.iou_match
        for candidate in candidates:
            if candidate.label != track.detection.label:
                continue
            iou = candidate.box.iou(track.detection.box)
            if iou >= best_iou:
                best, best_iou = candidate, iou
        return best
