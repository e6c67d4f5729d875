"""Reading annotation files into :class:`VideoRecord` lists, with errors that name file and line.

Formats (``format="auto"`` picks by the path: a folder is a class-per-folder tree, ``.json`` is
JSON, anything else CSV):

- **CSV** (official): one ``path<sep>label`` per line, ``sep`` configurable (default a space; the
  label is the last field, so paths may contain the separator). Blank lines and ``#`` comments are
  skipped. A header line ``path<sep>label`` is allowed.
- **Folder tree**: ``root/<class name>/<video>``; classes sorted by name, label = position.
- **JSON**: a list of objects ``{"video": "a.mp4", "label": 3, "caption": "..." | ["...", ...],
  "start": 12.5, "end": 30.0}``; only ``video`` is required (``label`` defaults to -1 and
  ``start``/``end`` to the whole video).

Class names: :func:`read_class_names` reads ``classes.txt`` (one name per line, line i = label i)
or a JSON list / ``{"name": label}`` mapping.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from videomamba.errors import AnnotationError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclass
class VideoRecord:
    """One annotated video (or segment of one)."""

    path: str
    label: int = -1
    captions: list[str] = field(default_factory=list)
    start: float | None = None
    end: float | None = None


def detect_format(annotation: str) -> str:
    if os.path.isdir(annotation):
        return "folder"
    return "json" if annotation.lower().endswith(".json") else "csv"


def read_annotations(annotation: str, fmt: str = "auto", separator: str = " ",
                     prefix: str = "") -> list[VideoRecord]:
    """Read ``annotation`` and join each video path to ``prefix`` (absolute paths are kept)."""
    if not os.path.exists(annotation):
        raise AnnotationError(f"{annotation}: annotation file not found (check the data path)")
    fmt = detect_format(annotation) if fmt == "auto" else fmt
    readers = {"csv": lambda: read_csv(annotation, separator), "json": lambda: read_json(annotation),
               "folder": lambda: read_folder(annotation)[0]}
    if fmt not in readers:
        raise AnnotationError(f"{annotation}: unknown annotation format {fmt!r}; "
                              "use 'csv', 'json' or 'folder'")
    records = readers[fmt]()
    if not records:
        raise AnnotationError(f"{annotation}: no videos listed")
    if prefix:
        for rec in records:
            rec.path = os.path.join(prefix, rec.path)
    return records


def read_csv(path: str, separator: str = " ") -> list[VideoRecord]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.rsplit(separator, 1) if separator.strip() else text.rsplit(None, 1)
            if lineno == 1 and [f.strip().lower() for f in fields] == ["path", "label"]:
                continue
            if len(fields) != 2 or not fields[0].strip():
                raise AnnotationError(
                    f"{path}:{lineno}: expected 'path{separator}label', got {text!r} "
                    f"(is the separator {separator!r} right?)")
            try:
                label = int(fields[1])
            except ValueError:
                raise AnnotationError(
                    f"{path}:{lineno}: label {fields[1]!r} is not an integer class index") from None
            records.append(VideoRecord(fields[0].strip(), label))
    return records


def read_json(path: str) -> list[VideoRecord]:
    try:
        with open(path, encoding="utf-8") as fh:
            items = json.load(fh)
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(items, list):
        raise AnnotationError(f"{path}: expected a JSON list of {{'video': ...}} objects")
    return [_json_record(path, i, item) for i, item in enumerate(items)]


def _json_record(path: str, i: int, item) -> VideoRecord:
    where = f"{path}: entry {i}"
    if not isinstance(item, dict) or not isinstance(item.get("video"), str):
        raise AnnotationError(f"{where}: expected an object with a 'video' path, got {item!r:.80}")
    captions = item.get("caption", [])
    captions = [captions] if isinstance(captions, str) else list(captions)
    if not all(isinstance(c, str) for c in captions):
        raise AnnotationError(f"{where}: 'caption' must be a string or a list of strings")
    try:
        label = int(item.get("label", -1))
        start = None if item.get("start") is None else float(item["start"])
        end = None if item.get("end") is None else float(item["end"])
    except (TypeError, ValueError) as err:
        raise AnnotationError(f"{where}: 'label', 'start' and 'end' must be numbers ({err})") from err
    if start is not None and end is not None and end < start:
        raise AnnotationError(f"{where}: 'end' ({end}) is before 'start' ({start})")
    return VideoRecord(item["video"], label, captions, start, end)


def read_folder(root: str) -> tuple[list[VideoRecord], list[str]]:
    """``root/<class>/<video>`` -> records (paths relative to ``root``) and sorted class names."""
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise AnnotationError(f"{root}: no class folders (expected root/<class name>/<video>)")
    records = []
    for label, name in enumerate(classes):
        for fname in sorted(os.listdir(os.path.join(root, name))):
            if fname.lower().endswith(VIDEO_EXTENSIONS):
                records.append(VideoRecord(os.path.join(root, name, fname), label))
    return records, classes


def read_class_names(path: str) -> list[str]:
    """``classes.txt`` (line i = name of label i) or JSON (a list, or ``{"name": label}``)."""
    if not os.path.isfile(path):
        raise AnnotationError(f"{path}: class-name file not found")
    if path.lower().endswith(".json"):
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if isinstance(data, dict):
            return [name for name, _ in sorted(data.items(), key=lambda kv: int(kv[1]))]
        return [str(x) for x in data]
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def resolve_class_names(annotation: str, records: list[VideoRecord],
                        classes: str | list[str] | None) -> list[str]:
    """Class names from ``classes`` (a list or a file), the folder tree, ``classes.txt`` beside
    the annotation file, or else ``["0", ..., "K-1"]`` from the largest label."""
    if isinstance(classes, (list, tuple)):
        names = [str(c) for c in classes]
    elif isinstance(classes, str):
        names = read_class_names(classes)
    elif os.path.isdir(annotation):
        names = read_folder(annotation)[1]
    else:
        beside = os.path.join(os.path.dirname(os.path.abspath(annotation)), "classes.txt")
        names = read_class_names(beside) if os.path.isfile(beside) else \
            [str(i) for i in range(max((r.label for r in records), default=-1) + 1)]
    too_big = [r for r in records if r.label >= len(names)]
    if too_big and names:
        raise AnnotationError(f"{annotation}: label {too_big[0].label} of {too_big[0].path} has no "
                              f"name ({len(names)} classes known); fix the labels or class list")
    return names
