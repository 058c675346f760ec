"""boxes.json, the person boxes of an inference run: written by every run, read back with
`--boxes` (edit it to correct a run).

A list (frame order) or a dict keyed by frame index (video) or image file name; each value a
box [x0, y0, x1, y1] (person box, pixel edges), null (the whole image), or a dict {track id:
box} (several people).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence


def _check_box(box, where: str):
    if box is None:
        return None
    if (
        not isinstance(box, (list, tuple))
        or len(box) != 4
        or not all(isinstance(v, (int, float)) for v in box)
        or box[2] <= box[0]
        or box[3] <= box[1]
    ):
        raise ValueError(
            f"{where} must be [x0, y0, x1, y1] with x1 > x0, y1 > y0, or null. Received: {box}"
        )
    return [float(v) for v in box]


def load_boxes(path: str | pathlib.Path | None) -> dict[str, dict[int, list[float] | None]] | None:
    """boxes.json -> {frame key: {track id: box or None}}.

    The file holds a list (frame order) or a dict keyed by frame index / image file name; each
    value a box [x0, y0, x1, y1] (person box, pixel edges), null (whole image), or a dict
    {track id: box} (several people). Frame keys of a list are "0", "1", ...

    Raises:
        FileNotFoundError, ValueError: missing file, bad JSON or a bad box (named).
    """
    if path is None:
        return None
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"boxes file {path} not found")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if isinstance(raw, list):
        raw = {str(i): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict):
        raise ValueError(  # noqa: TRY004  (bad file content: the entry points' user error)
            f"{path} must hold a list or a dict of boxes. Received: {type(raw).__name__}"
        )
    out = {}
    for i, (key, value) in enumerate(raw.items()):
        if isinstance(value, dict):
            try:
                out[str(key)] = {
                    int(t): _check_box(b, f"{path}: box {key}/{t}") for t, b in value.items()
                }
            except (TypeError, ValueError) as e:
                if "must be" in str(e):
                    raise
                raise ValueError(
                    f"{path}: frame {key}: track ids must be integers. Received: {list(value)}"
                ) from None
        else:
            out[str(key)] = {0: _check_box(value, f"{path}: box {i} (frame {key})")}
    return out


def _rounded(box):
    return None if box is None else [round(float(v), 2) for v in box]


def boxes_json(
    names: Sequence[str], people_per_frame: Sequence[Sequence], all_people: bool
) -> dict:
    """The boxes used, in the format `load_boxes` reads.

    Args:
        names: frame keys (video frame indices as strings, or image file names).
        people_per_frame: per frame, the people found (`runner.Person`: `track`, `box`).
        all_people: a {track id: box} dict per frame; else the first person's box.
    """
    out = {}
    for name, people in zip(names, people_per_frame):
        if all_people:
            out[name] = {str(p.track): _rounded(p.box) for p in people}
        else:
            out[name] = _rounded(people[0].box) if people else None
    return out
