"""Synthetic video datasets written as real video files with annotation files in our formats.

All three are deterministic from ``seed``: clip ``i`` of split ``s`` is drawn from its own
``numpy`` generator seeded by ``(seed, kind, s, i)``, so asking for more clips keeps the first ones
(motion: odd clip ``i`` reuses clip ``i - 1``'s generator and is that clip played backwards).
Labels cycle through the classes, so every split is balanced. Layout under ``out``::

    videos/<split>/<name>.mp4      the clips (MPEG-4 part 2 in mp4, high quality, every frame a key frame)
    <split>.csv                    motion / longrange: ``videos/<split>/<name>.mp4 <label>``
    <split>.json                   captions: [{"video", "caption", "label"}]
    classes.txt                    one class name per line (line i = label i)
    meta.json                      generator, arguments, counts, fps (written last)

Paths in the annotations are relative to ``out``: use ``prefix=out``.

- **motion** (:data:`MOTION_CLASSES`, 10 classes = 5 time-reversed pairs): one bright object
  (random shape, colour, size) on a random darker textured background with per-frame noise moves
  right/left, down/up, grows/shrinks, appears/disappears (fades) or turns clockwise/
  counter-clockwise about a pivot near its edge (so its centre follows an arc). The odd class of
  each pair is a clip of the even class played backwards, so both classes have exactly the same
  distribution of frame *sets*: a model that ignores frame order is at chance within each pair (at
  best 50 % overall). In the written sets every even clip is followed by its exact reversal, so
  such a model scores exactly 50 % between the two classes of each pair. No horizontal flip when
  training on it (left/right are classes).
- **longrange** (9 classes): on a dark textured background, two large flashes of a colour from
  (red, green, blue) happen far apart (the first in the first 35 % of the video, the second in
  the last 40 %), each lasting 1/8 of the video so sparse sampling sees it; small moving objects
  and small corner flashes of any colour are distractors. Label = ``3 * first + second``, so order
  matters (``red then blue`` is not ``blue then red``).
- **captions**: motion-style clips of a named colour and shape with a template sentence
  ("a red triangle moves to the left"); plus ``long/long_video.mp4`` made of ``segments``
  consecutive clips and ``long/segments.json`` with each one's caption and ``start``/``end`` times.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from videomamba.data.video_io import write_video
from videomamba.utils.io import atomic_write_text

MOTION_CLASSES = ("move_right", "move_left", "move_down", "move_up", "grow", "shrink",
                  "appear", "disappear", "rotate_clockwise", "rotate_counterclockwise")
MOTION_PHRASES = ("moves to the right", "moves to the left", "moves down", "moves up",
                  "grows larger", "shrinks", "appears", "disappears", "turns clockwise",
                  "turns counter-clockwise")
SHAPES = ("square", "triangle", "ellipse", "cross", "tee")
FLASH_COLOURS = {"red": (230, 30, 30), "green": (30, 210, 30), "blue": (40, 60, 235)}
LONGRANGE_CLASSES = tuple(f"{a}_then_{b}" for a in FLASH_COLOURS for b in FLASH_COLOURS)
NAMED_COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (50, 80, 230),
                 "yellow": (235, 215, 40), "purple": (150, 60, 200), "orange": (245, 140, 30),
                 "white": (245, 245, 245), "cyan": (40, 210, 220)}
SPLITS = ("train", "val", "test")
# MPEG-4 part 2 in mp4: libx264 gave different bytes from run to run on these tiny frames (even
# with one thread and YUV input), and the same seed must give the same files.
SYNTH_CODEC = "mpeg4"
# Every frame of a clip is a key frame: with a key frame only at the start, the sharpest frame marks
# where a motion begins, which lets an order-blind model tell a clip from its reversal.
SYNTH_GOP = 1
_KINDS = {"motion": 0, "longrange": 1, "captions": 2}
# Bumped whenever the same arguments start to give other clips; meta.json records it, so that a
# set written by an older generator is not taken for the current one.
GENERATOR_VERSION = 2


@dataclass
class SynthConfig:
    """Arguments of ``videomamba synth`` (``num`` = training clips; val and test get
    ``max(1, round(num * val_fraction))`` each)."""

    kind: str
    out: str
    num: int = 200
    frames: int = 16
    size: int = 32
    seed: int = 0
    fps: float = 8.0
    val_fraction: float = 0.25
    segments: int = 8  # captions: clips in the long video


# --- drawing ----------------------------------------------------------------------------------

def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in the shape's own coordinates (half-size 1, y down)."""
    au, av_ = np.abs(u), np.abs(v)
    if shape == "square":
        return np.maximum(au, av_) <= 0.8
    if shape == "triangle":
        return (v <= 0.7) & (v >= -1 + 2 * au)
    if shape == "ellipse":
        return u ** 2 + (v / 0.5) ** 2 <= 1
    if shape == "cross":
        return ((au <= 1) & (av_ <= 0.33)) | ((av_ <= 1) & (au <= 0.33))
    if shape == "tee":
        return ((au <= 1) & (v >= -1) & (v <= -0.45)) | ((au <= 0.3) & (v >= -1) & (v <= 1))
    raise ValueError(shape)


def _draw_object(canvas: np.ndarray, shape: str, colour: np.ndarray, cx: float, cy: float,
                 radius: float, angle: float, alpha: float) -> None:
    """Blend one object into ``canvas`` (H, W, 3) float in place; ``angle`` clockwise, radians."""
    if alpha <= 0 or radius <= 0:
        return
    h, w = canvas.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    dx, dy = (xs - cx) / radius, (ys - cy) / radius
    cos, sin = math.cos(angle), math.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = _shape_mask(shape, u, v)[..., None]
    canvas[:] = np.where(mask, (1 - alpha) * canvas + alpha * colour, canvas)


def _background(rng: np.random.Generator, size: int, dark: bool = False) -> np.ndarray:
    """A random smooth texture: base colour + coarse noise + a grating, float (H, W, 3).

    Kept low in contrast so that the object, not the texture, dominates what a small model sees;
    ``dark``: a darker base, under the bright objects of :func:`_bright_colour`.
    """
    base = rng.uniform(25, 110, 3) if dark else rng.uniform(40, 200, 3)
    coarse = rng.normal(0, 10, (4, 4, 3))
    reps = -(-size // 4)
    noise = np.kron(coarse, np.ones((reps, reps, 1)))[:size, :size]
    ys, xs = np.mgrid[0:size, 0:size] / size
    theta, freq = rng.uniform(0, np.pi), rng.uniform(2, 6)
    grating = np.sin(2 * np.pi * freq * (xs * np.cos(theta) + ys * np.sin(theta)))
    return np.clip(base + noise + rng.uniform(4, 10) * grating[..., None], 0, 255)


def _bright_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour clearly brighter than the (dark) background on average.

    Always brighter, never sometimes darker: then where the object is shows in the frame's pixels
    with one sign, which a model that sees each frame through one linear projection can use.
    """
    mean = background.mean()
    for _ in range(20):
        colour = rng.uniform(120, 255, 3)
        if colour.mean() - mean > 90:
            return colour
    return np.full(3, 250.0)


def _finish(frames: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Add i.i.d. per-frame noise and convert to uint8 (T, H, W, 3)."""
    frames = frames + rng.normal(0, noise, frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


# --- motion -----------------------------------------------------------------------------------

def motion_clip(label: int, rng: np.random.Generator, frames: int = 16, size: int = 32,
                colour: np.ndarray | None = None, shape: str | None = None) -> np.ndarray:
    """One clip of motion class ``label`` -> uint8 ``(T, H, W, 3)``. Odd labels are the even
    label's clip reversed in time."""
    if not 0 <= label < len(MOTION_CLASSES):
        raise ValueError(f"motion label {label} out of range 0..{len(MOTION_CLASSES) - 1}")
    clip = _forward_motion(label // 2, rng, frames, size, colour, shape)
    return clip[::-1].copy() if label % 2 else clip


def _forward_motion(pair: int, rng: np.random.Generator, frames: int, size: int,
                    colour: np.ndarray | None, shape: str | None) -> np.ndarray:
    background = _background(rng, size, dark=colour is None)
    shape = shape or SHAPES[rng.integers(len(SHAPES))]
    colour = _bright_colour(rng, background) if colour is None else np.asarray(colour, float)
    radius = size * rng.uniform(0.18, 0.24)
    cx, cy = size * rng.uniform(0.35, 0.65, 2)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.linspace(0.0, 1.0, frames)
    xs, ys, radii = np.full(frames, cx), np.full(frames, cy), np.full(frames, radius)
    angles, alphas = np.full(frames, angle), np.ones(frames)
    if pair in (0, 1):  # move right / move down (reversed: left / up)
        dist = size * rng.uniform(0.4, 0.55)
        start = size / 2 - dist / 2 + size * rng.uniform(-0.05, 0.05)
        track = start + dist * t
        (xs if pair == 0 else ys)[:] = track
    elif pair == 2:  # grow (reversed: shrink)
        r0 = size * rng.uniform(0.09, 0.12)
        radii = r0 * (1 + rng.uniform(1.2, 1.8) * t)
    elif pair == 3:  # appear, a fade-in starting at a random time (reversed: disappear)
        onset, length = rng.uniform(0.0, 0.35), rng.uniform(0.3, 0.6)
        alphas = np.clip((t - onset) / length, 0, 1)
    else:  # rotate clockwise (reversed: counter-clockwise) about a pivot near the object's edge
        xs, ys, angles = _swing_about_pivot(rng, size, radius, angle, t)
    video = np.repeat(background[None], frames, axis=0)
    for k in range(frames):
        _draw_object(video[k], shape, colour, xs[k], ys[k], radii[k], angles[k], alphas[k])
    return _finish(video, rng, noise=rng.uniform(2, 5))


def _swing_about_pivot(rng: np.random.Generator, size: int, radius: float, angle: float,
                       t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres x, y and angles ``(T,)`` of a rigid clockwise turn about a pivot off the centre.

    Turning in place would leave only the object's orientation to see, which a shape with
    rotational symmetry (square, cross) hides; turning about a point near its edge, like a clock
    hand, also carries the centre along a clockwise arc (y down, so a growing angle is clockwise).
    """
    pivot_x, pivot_y = size * rng.uniform(0.45, 0.55, 2)
    arm = radius * rng.uniform(0.7, 1.0)
    start = rng.uniform(0, 2 * np.pi)
    turn = start + np.deg2rad(rng.uniform(90, 150)) * t
    return pivot_x + arm * np.cos(turn), pivot_y + arm * np.sin(turn), angle + turn - start


# --- long range -------------------------------------------------------------------------------

def longrange_clip(label: int, rng: np.random.Generator, frames: int = 128,
                   size: int = 32) -> np.ndarray:
    """Two flashes far apart decide the label (``3 * first + second``) -> uint8 (T, H, W, 3)."""
    names = list(FLASH_COLOURS)
    if not 0 <= label < len(names) ** 2:
        raise ValueError(f"longrange label {label} out of range 0..{len(names) ** 2 - 1}")
    first, second = divmod(label, len(names))
    background = _background(rng, size, dark=True)  # each flash's own colour channel always rises
    video = np.repeat(background[None], frames, axis=0)
    _add_distractors(video, rng)
    length = max(2, math.ceil(frames / 8))
    t1 = int(rng.uniform(0.0, 0.35) * frames)
    t2 = max(int(rng.uniform(0.6, 1.0) * frames) - length, t1 + length)
    lo, hi = int(size * 0.3), int(size * 0.7)
    for start, name in ((t1, names[first]), (t2, names[second])):
        video[start:start + length, lo:hi, lo:hi] = FLASH_COLOURS[name]
    return _finish(video, rng, noise=3.0)


def _add_distractors(video: np.ndarray, rng: np.random.Generator) -> None:
    """Small random-walking objects and short small corner flashes of random colours."""
    frames, size = video.shape[0], video.shape[1]
    for _ in range(rng.integers(2, 4)):
        pos = rng.uniform(0.15, 0.85, 2) * size
        vel = rng.normal(0, size * 0.02, 2)
        colour, shape = rng.uniform(0, 255, 3), SHAPES[rng.integers(len(SHAPES))]
        for k in range(frames):
            pos = np.clip(pos + vel, 0.1 * size, 0.9 * size)
            _draw_object(video[k], shape, colour, pos[0], pos[1], size * 0.06, 0.0, 1.0)
    corner = max(2, size // 6)
    for _ in range(rng.integers(2, 6)):
        start, length = rng.integers(0, frames), rng.integers(1, max(2, frames // 16))
        y, x = rng.choice([0, size - corner], 2)
        video[start:start + length, y:y + corner, x:x + corner] = rng.uniform(0, 255, 3)


# --- captions ---------------------------------------------------------------------------------

_TEMPLATES = ("a {colour} {shape} {motion}", "the {colour} {shape} {motion}",
              "there is a {colour} {shape} that {motion}")


def caption_clip(index: int, rng: np.random.Generator, frames: int = 16, size: int = 32
                 ) -> tuple[np.ndarray, str, int]:
    """A motion clip of a named colour and shape with its sentence -> (frames, caption, label)."""
    label = index % len(MOTION_CLASSES)
    colour_name = list(NAMED_COLOURS)[rng.integers(len(NAMED_COLOURS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    clip = motion_clip(label, rng, frames, size, np.array(NAMED_COLOURS[colour_name], float), shape)
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    text = template.format(colour=colour_name, shape=_shape_word(shape),
                           motion=MOTION_PHRASES[label])
    return clip, text, label


def _shape_word(shape: str) -> str:
    return {"tee": "T shape", "cross": "cross"}.get(shape, shape)


# --- writing a dataset ------------------------------------------------------------------------

def _clip_rng(cfg: SynthConfig, split: str, i: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, _KINDS[cfg.kind], SPLITS.index(split), i])


def split_sizes(cfg: SynthConfig) -> dict[str, int]:
    held_out = max(1, round(cfg.num * cfg.val_fraction))
    return {"train": cfg.num, "val": held_out, "test": held_out}


def generate(cfg: SynthConfig, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the dataset ``cfg.kind`` under ``cfg.out``; returns what ``meta.json`` holds."""
    _check(cfg)
    os.makedirs(cfg.out, exist_ok=True)
    sizes = split_sizes(cfg)
    total, done = sum(sizes.values()), 0
    classes = LONGRANGE_CLASSES if cfg.kind == "longrange" else MOTION_CLASSES
    for split, count in sizes.items():
        rows = []
        for i in range(count):
            rel = f"videos/{split}/{i:06d}.mp4"
            rows.append(_write_clip(cfg, split, i, rel))
            done += 1
            if progress:
                progress(done, total)
        _write_annotation(cfg, split, rows)
    atomic_write_text(os.path.join(cfg.out, "classes.txt"), "".join(f"{c}\n" for c in classes))
    meta = {"generator": f"videomamba synth {cfg.kind}", "version": GENERATOR_VERSION,
            "config": asdict(cfg), "splits": sizes, "classes": list(classes)}
    if cfg.kind == "captions":
        meta["long_video"] = _write_long_video(cfg)
    atomic_write_text(os.path.join(cfg.out, "meta.json"), json.dumps(meta, indent=2) + "\n")
    return meta


def _check(cfg: SynthConfig) -> None:
    from videomamba.errors import ConfigError

    if cfg.kind not in _KINDS:
        raise ConfigError(f"synth: unknown kind {cfg.kind!r}; choose one of {', '.join(_KINDS)}")
    if cfg.size < 16 or cfg.size % 2:
        raise ConfigError(f"synth: --size {cfg.size} must be even and >= 16 (H.264 needs even sizes)")
    if cfg.num < 1 or cfg.frames < 2 or cfg.fps <= 0:
        raise ConfigError("synth: --num >= 1, --frames >= 2 and --fps > 0 are required")
    if cfg.kind == "longrange" and not 64 <= cfg.frames <= 4096:
        raise ConfigError(f"synth longrange: --frames {cfg.frames} should be 64..512 (at most 4096)")


def _write_clip(cfg: SynthConfig, split: str, i: int, rel: str) -> dict:
    row: dict = {"video": rel}
    if cfg.kind == "motion":
        # Clip 2m + 1 (odd label) is clip 2m (the even label of the same pair) played backwards:
        # same generator, so the same scene and motion.
        rng = _clip_rng(cfg, split, i - i % 2)
        row["label"] = i % len(MOTION_CLASSES)
        clip = motion_clip(row["label"], rng, cfg.frames, cfg.size)
        return _write_frames(cfg, rel, clip, row)
    rng = _clip_rng(cfg, split, i)
    if cfg.kind == "longrange":
        row["label"] = i % len(LONGRANGE_CLASSES)
        clip = longrange_clip(row["label"], rng, cfg.frames, cfg.size)
    else:
        clip, row["caption"], row["label"] = caption_clip(i, rng, cfg.frames, cfg.size)
    return _write_frames(cfg, rel, clip, row)


def _write_frames(cfg: SynthConfig, rel: str, clip: np.ndarray, row: dict) -> dict:
    write_video(os.path.join(cfg.out, rel), clip, cfg.fps, codec=SYNTH_CODEC, gop=SYNTH_GOP)
    return row


def _write_annotation(cfg: SynthConfig, split: str, rows: list[dict]) -> None:
    if cfg.kind == "captions":
        text = json.dumps(rows, indent=1) + "\n"
        atomic_write_text(os.path.join(cfg.out, f"{split}.json"), text)
    else:
        text = "".join(f"{r['video']} {r['label']}\n" for r in rows)
        atomic_write_text(os.path.join(cfg.out, f"{split}.csv"), text)


def _write_long_video(cfg: SynthConfig) -> dict:
    """``long/long_video.mp4``: ``segments`` caption clips back to back, with their times."""
    clips, entries = [], []
    rel = "long/long_video.mp4"
    for k in range(cfg.segments):
        rng = np.random.default_rng([cfg.seed, _KINDS["captions"], 99, k])
        clip, text, label = caption_clip(k, rng, cfg.frames, cfg.size)
        clips.append(clip)
        entries.append({"video": rel, "caption": text, "label": label,
                        "start": k * cfg.frames / cfg.fps, "end": (k + 1) * cfg.frames / cfg.fps})
    write_video(os.path.join(cfg.out, rel), np.concatenate(clips), cfg.fps, codec=SYNTH_CODEC)
    atomic_write_text(os.path.join(cfg.out, "long", "segments.json"), json.dumps(entries, indent=1) + "\n")
    return {"video": rel, "annotation": "long/segments.json", "segments": cfg.segments}



