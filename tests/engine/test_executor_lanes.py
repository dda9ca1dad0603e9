"""On-demand requests (actions) have a lane of their own: they never take a camera's place."""

from __future__ import annotations

from concurrent.futures import Future, wait

from custom_components.coral_vision.engine.errors import QueueFullError
from custom_components.coral_vision.engine.inference.executor import Executor
from custom_components.coral_vision.engine.models.model import Model
from custom_components.coral_vision.engine.results import FrameResult

from .test_executor import blocked_pool

WAIT_S = 60.0


def test_on_demand_requests_have_their_own_places(tiny: Model, photo: bytes) -> None:
    with (
        blocked_pool() as (pool, gate),
        Executor(tiny, pool=pool, queue_size=2, on_demand_limit=2) as executor,
    ):
        actions = [executor.submit(f"action:{i}", photo, on_demand=True) for i in range(5)]
        refused = [f.exception(timeout=0) for f in actions if f.done()]
        cameras = [executor.submit(f"cam{i}", photo) for i in range(2)]
        one_camera_too_many = executor.submit("cam2", photo).exception(timeout=0)
        assert not any(f.done() for f in [*actions[:2], *cameras])
        gate.set()
        accepted = [f.result(timeout=WAIT_S) for f in [*actions[:2], *cameras]]
        again = executor.run_sync("action:again", photo, on_demand=True)
        stats = executor.stats()
    assert len(refused) == 3
    assert all(isinstance(e, QueueFullError) for e in refused)
    assert "already runs 2 on-demand frames" in str(refused[0])
    assert isinstance(one_camera_too_many, QueueFullError)
    assert "already holds 2 frames" in str(one_camera_too_many)
    assert [r.source_id for r in accepted] == ["action:0", "action:1", "cam0", "cam1"]
    assert again.source_id == "action:again"  # the places are free once answered
    assert stats.frames_rejected == 4
    assert stats.frames_done == 5


def test_a_camera_frame_is_not_served_after_a_burst_of_actions(tiny: Model, photo: bytes) -> None:
    done: list[str] = []
    with (
        blocked_pool() as (pool, gate),
        Executor(tiny, pool=pool, on_demand_limit=4) as executor,
    ):
        futures = {
            f"action:{i}": executor.submit(f"action:{i}", photo, on_demand=True) for i in range(4)
        }
        futures["cam"] = executor.submit("cam", photo)  # the last in, yet not the last served
        for name, future in futures.items():
            future.add_done_callback(lambda _, name=name: done.append(name))
        gate.set()
        _, not_done = wait(futures.values(), timeout=WAIT_S)
    assert not not_done
    assert all(isinstance(f.result(), FrameResult) for f in futures.values())
    assert done.index("cam") <= 1, done


def test_cameras_keep_their_frames_under_a_flood_of_actions(tiny: Model, photo: bytes) -> None:
    answered = refused = 0
    cameras: list[FrameResult | BaseException] = []
    with Executor(tiny, on_demand_limit=3) as executor:
        for _ in range(10):
            flood = [executor.submit(f"action:{i}", photo, on_demand=True) for i in range(60)]
            camera: Future[FrameResult] = executor.submit("cam", photo)
            cameras.append(camera.exception(timeout=WAIT_S) or camera.result())
            wait(flood, timeout=WAIT_S)
            errors = [f.exception() for f in flood]
            answered += errors.count(None)
            refused += sum(isinstance(e, QueueFullError) for e in errors)
    assert all(isinstance(c, FrameResult) for c in cameras), cameras
    assert answered + refused == 600
    # Three places per flood: most of each burst is refused at once (how many places free up
    # while a burst is being submitted depends on the machine's speed).
    assert answered >= 10
    assert refused >= 300
