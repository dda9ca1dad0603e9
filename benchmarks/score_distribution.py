"""Score distributions of true objects and false positives on the shared photos, and a default.

Run from the repository: .envs/oldest/bin/python benchmarks/score_distribution.py [--frames M]

Every catalog detection model whose CPU file is in the models folder (../shared/models, or
$CORAL_VISION_SHARED/models, or the folder $CORAL_VISION_MIRROR names) runs, through the real
interpreter, over every shared photo and over M-1 noisy copies of it (cropped by up to 2 % a side,
brightness changed by up to 5 %, JPEG re-encoded at quality 80: what consecutive camera frames of
a still scene differ by). Each detection is judged against the hand-made ground truth below:
- true: the centre of an object of its label lies inside its box and they overlap (IoU >= 0.2);
  the boxes of objects a few input pixels tall are off by several pixels, so the centre may lie
  up to 2 % of the frame outside the box;
- duplicate: a second box on an object already found (counts as an object twice, alarms nothing);
- false: no object of its label there (a kite called a person, a sunflower called a teddy bear);
- ignored: on something the ground truth leaves open (a blurred animal at the cat photo's edge).

It prints, per model: each label's score histogram of true, duplicate and false detections; per
minimum score, what the camera would report; per minimum score, minimum area and N-of-M
confirmation, the objects a camera would announce (Coral Vision's real filter and tracker over
the frames in a row); and the suggested default. The TensorFlow SSD MobileNet v1 returns at most
10 boxes a frame, so on the kite photo an object may drop out of a noisy copy altogether (score 0).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import types
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from PIL import Image, ImageEnhance

if TYPE_CHECKING:
    from custom_components.coral_vision.engine.inference.delegate import Backend
    from custom_components.coral_vision.engine.results import BBox, Detection

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CORAL_VISION_SHARED", REPO.parent / "shared"))
IMAGES = SHARED / "images"

Verdict = Literal["true", "duplicate", "false", "ignored"]
Box = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax as shares of width and height

MATCH_IOU = 0.2
# An object's centre may lie this share of the frame outside the box (6 pixels of a 300 input).
CENTRE_SLACK = 0.02
BIN = 0.05
DECODE_THRESHOLD = 0.1  # what the integration decodes at before a camera's own filter
THRESHOLDS = tuple(round(0.3 + BIN * i, 2) for i in range(11))  # 0.30 .. 0.80
MIN_AREAS = (0.0, 0.001)  # shares of the frame: off, and 0.1 %
CONFIRMATIONS = ((1, 1), (2, 3), (3, 5))


def px(box: tuple[float, float, float, float], width: int, height: int) -> Box:
    """A box measured in pixels of a width x height photo, as shares of the frame."""
    return (box[0] / width, box[1] / height, box[2] / width, box[3] / height)


@dataclass(frozen=True)
class Truth:
    """What is really in a photo: labelled boxes, and boxes whose label is left open."""

    objects: tuple[tuple[str, Box], ...] = ()
    unsure: tuple[Box, ...] = ()


# Drawn by looking at each photo (boxes in the photo's own pixels, stored as shares so the 720p
# and 1080p copies of the cat photo share them). Only COCO labels the photos really show.
_KITE = (1352, 900)
_KITE_PEOPLE = (
    (82, 508, 101, 567),  # man in a dark jacket, far left on the beach
    (40, 510, 53, 562),  # man in a white shirt
    (21, 531, 39, 558),  # child in a red cap
    (95, 537, 110, 567),  # toddler beside the man in the dark jacket
    (176, 540, 193, 575),  # girl in the surf
    (113, 612, 165, 762),  # foreground child in the light blue hood
    (217, 698, 270, 852),  # foreground child in the dark blue hood
    (347, 487, 356, 504),  # kitesurfer, left
    (520, 505, 534, 527),  # kitesurfer standing in the water
    (534, 514, 555, 534),  # kitesurfer crouching beside them
    (696, 462, 702, 471),  # specks far out on the water
    (1203, 449, 1209, 460),
    (463, 476, 467, 483),
)
_KITES = (
    (590, 75, 670, 148),  # large green kite
    (278, 236, 303, 281),  # black and white kite
    (466, 339, 484, 358),  # blue kite
    (577, 344, 599, 369),  # small green kite
    (301, 374, 326, 406),  # yellow and blue kite
    (762, 378, 770, 391),  # small red kite
    (1079, 392, 1098, 422),  # red kite above the shore, right
)
_CAT = Truth(
    objects=(("cat", px((45, 40, 365, 335), 512, 341)),),
    # A long-haired animal (or someone's hair) cut off by the right edge.
    unsure=(px((455, 60, 512, 300), 512, 341),),
)
GROUND_TRUTH: dict[str, Truth] = {
    "grace_hopper.bmp": Truth(
        objects=(
            ("person", px((0, 30, 512, 600), 512, 600)),
            ("tie", px((228, 420, 292, 540), 512, 600)),
        )
    ),
    "kite_and_cold.jpg": Truth(
        objects=tuple(("person", px(b, *_KITE)) for b in _KITE_PEOPLE)
        + tuple(("kite", px(b, *_KITE)) for b in _KITES)
    ),
    "cat.bmp": _CAT,
    "cat_720p.jpg": _CAT,
    "cat_1080p.jpg": _CAT,
    "bird.bmp": Truth(objects=(("bird", px((35, 85, 490, 330), 512, 343)),)),
    "parrot.jpg": Truth(objects=(("bird", px((100, 100, 470, 905), 512, 929)),)),
    "sunflower.bmp": Truth(),  # no COCO object: a sunflower in a field of sunflowers
}


@dataclass(frozen=True)
class Judged:
    """A detection, the ground-truth object it found (index) and the verdict."""

    detection: Detection
    verdict: Verdict
    share: float  # of the frame the box covers
    found: int | None = None


@dataclass
class Frame:
    """One frame of a photo: the detections in the photo's own pixels, judged."""

    photo: str
    size: tuple[int, int]
    judged: list[Judged] = field(default_factory=list)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6, help="frames per photo (default 6)")
    parser.add_argument("--seed", type=int, default=9, help="of the frame noise (default 9)")
    args = parser.parse_args()
    missing = [name for name in GROUND_TRUTH if not (IMAGES / name).is_file()]
    if missing:
        print(
            f"missing {', '.join(missing)} in {IMAGES}: put the project's shared/ folder beside "
            "the repository or set CORAL_VISION_SHARED",
            file=sys.stderr,
        )
        return 1
    import_engine_alone()
    models = list(detection_models())
    if not models:
        print(f"no catalog detection model found under {SHARED / 'models'}", file=sys.stderr)
        return 1
    for name, backend in models:
        rng = np.random.default_rng(args.seed)
        frames = {
            photo: list(run_photo(backend, photo, args.frames, rng)) for photo in GROUND_TRUTH
        }
        print(f"=== {name}: {len(GROUND_TRUTH)} photos x {args.frames} frames ===")
        print_histograms(frames)
        print_thresholds(frames)
        print_objects(frames)
        print_confirmation(frames)
        print_suggestion(frames)
        print()
    return 0


def import_engine_alone() -> None:
    """Make the engine importable without the integration's __init__ (and Home Assistant)."""
    sys.path.insert(0, str(REPO))
    package = types.ModuleType("custom_components.coral_vision")
    package.__path__ = [str(REPO / "custom_components" / "coral_vision")]
    sys.modules.setdefault("custom_components.coral_vision", package)


def detection_models() -> Iterator[tuple[str, Backend]]:
    """Every catalog detection model whose CPU file (and labels) are here, opened on the CPU."""
    from custom_components.coral_vision.engine.inference.delegate import open_backend
    from custom_components.coral_vision.engine.models.catalog import load_catalog
    from custom_components.coral_vision.engine.models.model import load_model

    folders = [SHARED / "models"]
    mirror = os.environ.get("CORAL_VISION_MIRROR", "")
    if mirror and Path(mirror).is_dir():
        folders.append(Path(mirror))
    for entry in load_catalog().values():
        if entry.task != "detection":
            continue
        found = [f for f in folders if (f / entry.cpu.path).is_file()]
        if not found:
            print(f"({entry.id}: {entry.cpu.path} is not in {', '.join(map(str, folders))})")
            continue
        folder = found[0]
        labels = folder / entry.labels.path if entry.labels else None
        model = load_model(folder / entry.cpu.path, labels=labels, name=entry.id)
        yield entry.name, open_backend(model, None)


def run_photo(
    backend: Backend, photo: str, count: int, rng: np.random.Generator
) -> Iterator[Frame]:
    """The photo as it is, then count-1 noisy copies, each detected and judged."""
    from custom_components.coral_vision.engine.vision.detect import get_detections
    from custom_components.coral_vision.engine.vision.preprocess import prepare_frame

    data = (IMAGES / photo).read_bytes()
    size = Image.open(io.BytesIO(data)).size
    for index in range(count):
        frame_data, offset = (data, (0, 0)) if index == 0 else noisy_copy(data, rng)
        prepared = prepare_frame(frame_data, backend.model.input)
        found = get_detections(
            backend.model,
            backend.invoke(prepared),
            prepared,
            threshold=DECODE_THRESHOLD,
            top_k=100,
        )
        yield Frame(photo, size, judge(shift(found, offset), GROUND_TRUTH[photo], size))


def noisy_copy(data: bytes, rng: np.random.Generator) -> tuple[bytes, tuple[int, int]]:
    """A copy cropped by up to 2 % a side, 5 % lighter or darker, as a JPEG; and its offset."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    left, right = (int(rng.uniform(0, 0.02) * width) for _ in range(2))
    top, bottom = (int(rng.uniform(0, 0.02) * height) for _ in range(2))
    image = image.crop((left, top, width - right, height - bottom))
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.95, 1.05)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue(), (left, top)


def shift(found: Sequence[Detection], offset: tuple[int, int]) -> list[Detection]:
    """Detections of a crop, moved back into the photo's own pixels."""
    from custom_components.coral_vision.engine.results import BBox, Detection

    dx, dy = offset
    return [
        Detection(
            d.label,
            d.id,
            d.score,
            BBox(d.box.xmin + dx, d.box.ymin + dy, d.box.xmax + dx, d.box.ymax + dy),
        )
        for d in found
    ]


def judge(found: Sequence[Detection], truth: Truth, size: tuple[int, int]) -> list[Judged]:
    """True, duplicate, false or ignored for each detection, best score first."""
    width, height = size
    objects = [(label, to_pixels(box, size)) for label, box in truth.objects]
    unsure = [to_pixels(box, size) for box in truth.unsure]
    taken: set[int] = set()
    judged: list[Judged] = []
    for detection in sorted(found, key=lambda d: -d.score):
        share = detection.box.area / (width * height)
        hits = [
            (detection.box.iou(box), i)
            for i, (label, box) in enumerate(objects)
            if label == detection.label and matches(detection.box, box, size)
        ]
        free = [hit for hit in hits if hit[1] not in taken]
        if free:
            index = max(free)[1]
            taken.add(index)
            judged.append(Judged(detection, "true", share, index))
        elif hits:
            judged.append(Judged(detection, "duplicate", share, max(hits)[1]))
        elif any(matches(detection.box, box, size) for box in unsure):
            judged.append(Judged(detection, "ignored", share))
        else:
            judged.append(Judged(detection, "false", share))
    return judged


def to_pixels(box: Box, size: tuple[int, int]) -> BBox:
    """A ground-truth box in a photo's pixels."""
    from custom_components.coral_vision.engine.results import BBox

    width, height = size
    return BBox(box[0] * width, box[1] * height, box[2] * width, box[3] * height)


def matches(found: BBox, truth: BBox, size: tuple[int, int]) -> bool:
    """Whether a detected box is on an object: the object's centre in it, and enough overlap."""
    cx, cy = (truth.xmin + truth.xmax) / 2, (truth.ymin + truth.ymax) / 2
    slack_x, slack_y = size[0] * CENTRE_SLACK, size[1] * CENTRE_SLACK
    inside = (
        found.xmin - slack_x <= cx <= found.xmax + slack_x
        and found.ymin - slack_y <= cy <= found.ymax + slack_y
    )
    return inside and found.iou(truth) >= MATCH_IOU


def all_judged(frames: dict[str, list[Frame]]) -> Iterator[Judged]:
    """Every judged detection of every frame."""
    for photo_frames in frames.values():
        for frame in photo_frames:
            yield from frame.judged


def print_histograms(frames: dict[str, list[Frame]]) -> None:
    """Per label: how many true, duplicate and false detections fall in each score bin."""
    print("\nScore histograms (all frames; T true, D duplicate, F false, ? ignored):")
    by_label: dict[str, list[Judged]] = {}
    for judged in all_judged(frames):
        by_label.setdefault(judged.detection.label, []).append(judged)
    order = sorted(by_label, key=lambda label: -sum(j.verdict == "true" for j in by_label[label]))
    for label in order:
        counts = Counter(j.verdict for j in by_label[label])
        print(
            f"  {label}: {counts['true']} true, {counts['duplicate']} duplicate, "
            f"{counts['false']} false, {counts['ignored']} ignored"
        )
        bins: dict[int, Counter[Verdict]] = {}
        for judged in by_label[label]:
            bins.setdefault(int(judged.detection.score / BIN + 1e-9), Counter())[
                judged.verdict
            ] += 1
        for index in sorted(bins, reverse=True):
            row = bins[index]
            bar = "T" * row["true"] + "D" * row["duplicate"] + "F" * row["false"]
            bar += "?" * row["ignored"]
            print(f"    {index * BIN:.2f}-{(index + 1) * BIN:.2f} {bar}")


def print_thresholds(frames: dict[str, list[Frame]]) -> None:
    """Per minimum score: detections a camera keeps, by verdict and box size."""
    judged = list(all_judged(frames))
    people = [j for j in judged if j.detection.label == "person"]
    print("\nPer minimum score, all frames (small: box under 0.1 % of the frame):")
    print("  min score | all: true (small) | duplicate | false (small) | person: true | false")
    for threshold in THRESHOLDS:
        kept = [j for j in judged if j.detection.score >= threshold]
        dup = sum(j.verdict == "duplicate" for j in kept)
        true, false = split(kept)
        people_true, people_false = split([j for j in people if j.detection.score >= threshold])
        print(
            f"  {threshold:9.2f} | {len(true):9d} ({small(true):3d}) | {dup:9d} | "
            f"{len(false):7d} ({small(false):3d}) | {len(people_true):6d} ({small(people_true):2d})"
            f" | {len(people_false):2d} ({small(people_false):2d})"
        )


def split(judged: Sequence[Judged]) -> tuple[list[Judged], list[Judged]]:
    """The true and the false detections."""
    return [j for j in judged if j.verdict == "true"], [j for j in judged if j.verdict == "false"]


def small(judged: Sequence[Judged]) -> int:
    """How many boxes cover less than 0.1 % of the frame."""
    return sum(j.share < MIN_AREAS[1] for j in judged)


def print_objects(frames: dict[str, list[Frame]]) -> None:
    """Each real object's score over the frames, and the best false positives."""
    print(
        "\nEach object the model finds: share of the frame, score in the photo, min-max of frames:"
    )
    for photo, photo_frames in frames.items():
        truth = GROUND_TRUTH[photo]
        for index, (label, box) in enumerate(truth.objects):
            scores = [
                max((j.detection.score for j in f.judged if j.found == index), default=0.0)
                for f in photo_frames
            ]
            if max(scores) == 0.0:
                continue
            share = (box[2] - box[0]) * (box[3] - box[1])
            print(
                f"  {photo:18s} {label:7s} #{index:<2d} {share:6.2%}  {scores[0]:.2f}  "
                f"{min(scores):.2f}-{max(scores):.2f}"
            )
    print("False positives scoring 0.4 or more (photo, label, share of the frame, scores):")
    falses: dict[tuple[str, str, int], list[float]] = {}
    for photo, photo_frames in frames.items():
        for frame in photo_frames:
            for j in frame.judged:
                if j.verdict == "false" and j.detection.score >= 0.4:
                    key = (photo, j.detection.label, round(j.share * 1000))
                    falses.setdefault(key, []).append(j.detection.score)
    for (photo, label, permille), scores in sorted(falses.items(), key=lambda kv: -max(kv[1])):
        listed = " ".join(f"{s:.2f}" for s in sorted(scores, reverse=True))
        print(f"  {photo:18s} {label:12s} ~{permille / 10:4.1f} %  {listed}")


def print_confirmation(frames: dict[str, list[Frame]]) -> None:
    """Objects announced over each photo's frames in a row: real filter, real tracker."""
    print("\nAnnounced objects over each photo's frames in a row (true / false):")
    header = "".join(f" | {n}/{m} area>={a:.1%}" for n, m in CONFIRMATIONS for a in MIN_AREAS)
    print(f"  min score{header}")
    for threshold in THRESHOLDS:
        cells = [announced(frames, threshold, a, n, m) for n, m in CONFIRMATIONS for a in MIN_AREAS]
        print(f"  {threshold:9.2f}" + "".join(f" | {t:5d} / {f:<8d}" for t, f in cells))


def announced(
    frames: dict[str, list[Frame]], threshold: float, min_area: float, n: int, m: int
) -> tuple[int, int]:
    """Real objects and false positives a camera would announce with these settings."""
    from custom_components.coral_vision.engine.camera.filters import ObjectFilter
    from custom_components.coral_vision.engine.camera.tracking import ObjectTracker

    object_filter = ObjectFilter(default_score=threshold, min_area=min_area)
    true = false = 0
    for photo_frames in frames.values():
        tracker = ObjectTracker(confirm_frames=n, confirm_window=m)
        verdicts = {}
        seen: set[int] = set()
        for time, frame in enumerate(photo_frames):
            verdicts = {id(j.detection): j for j in frame.judged}
            kept = object_filter.apply([j.detection for j in frame.judged], frame.size)
            for detection in tracker.update(kept, float(time)).new:
                judged = verdicts[id(detection)]
                if judged.verdict == "true" and judged.found is not None:
                    true += judged.found not in seen
                    seen.add(judged.found)
                elif judged.verdict == "false":
                    false += 1
    return true, false


def print_suggestion(frames: dict[str, list[Frame]]) -> None:
    """The highest minimum score that keeps every real object of at least 0.1 % of the frame."""
    original = [j for photo_frames in frames.values() for j in photo_frames[0].judged]
    wanted = [j for j in original if j.verdict == "true" and j.share >= MIN_AREAS[1]]
    lowest = min(wanted, key=lambda j: j.detection.score)
    suggested = int(lowest.detection.score / BIN) * BIN
    above = [j for j in original if j.verdict == "false" and j.detection.score >= suggested]
    print(
        f"\nSuggested minimum score: {suggested:.2f}, the highest {BIN:.2f} step that keeps every "
        f"real object of at least {MIN_AREAS[1]:.1%} of the frame in the photos as they are "
        f"(lowest: {lowest.detection.label} {lowest.detection.score:.3f}, "
        f"{lowest.share:.2%} of the frame). False positives at or above it in those photos: "
        + (
            ", ".join(f"{j.detection.label} {j.detection.score:.2f} ({j.share:.2%})" for j in above)
            or "none"
        )
    )
    kept = [j for j in all_judged(frames) if j.detection.score >= suggested]
    true, false = split([j for j in kept if j.share < MIN_AREAS[1]])
    big_true, big_false = split([j for j in kept if j.share >= MIN_AREAS[1]])
    print(
        f"At {suggested:.2f} over all frames: boxes under {MIN_AREAS[1]:.1%} of the frame "
        f"{len(true)} true, {len(false)} false; boxes at least that big {len(big_true)} true, "
        f"{len(big_false)} false ({', '.join(sorted({j.detection.label for j in big_false}))})."
    )


if __name__ == "__main__":
    sys.exit(main())
