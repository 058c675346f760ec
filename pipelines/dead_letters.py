"""What became of the items that gave no record: dead letters, their file and the quality rule
a job is held to.

A DoFn that cannot make a record from an item yields `dead_letter(item_id, stage, reason)` (a
`TaggedOutput` on `DEAD_LETTER_TAG`) and goes on; catch only the errors you expect (bad
values, missing keys) and let bugs crash the job. Stages in `EXCLUSION_STAGES` are documented
exclusions, not failures. A letter for a whole sequence passes `records=` (the records it
would have given, `records_for`), so the dead-letter fraction weighs a lost video by its
frames. `dead_letter` counts per stage as the Beam counter `dead_letter/<stage>`.
"""

from __future__ import annotations

import collections
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam
import tensorflow as tf

from pipelines.counters import counter

DEAD_LETTER_TAG = "dead_letter"
DEAD_LETTER_PREFIX = "dead_letter"
DEAD_LETTER_FILE = f"{DEAD_LETTER_PREFIX}-00000-of-00001.jsonl"
# A job whose failed records (dead letters weighted by the records they stand for) exceed this
# fraction of failed plus written records fails (manifest incomplete).
DEFAULT_MAX_DEAD_LETTER_FRACTION = 0.05
# Dead-letter stages that are documented exclusions or notes, not failures: they never count
# against --max_dead_letter_fraction.
EXCLUSION_STAGES = frozenset(
    {
        "excluded",  # known-defective sequences (H36M)
        "frame_count",  # pose / video frames without a partner (H36M, 3DHP)
        "invalid_frames",  # 3DHP test frames with valid_frame != 1
        "test_persons",  # MPII test persons (no joints)
        "min_joints",  # MPII persons with fewer than --min_joints points
        "split_file",  # --split_file entries that match no person (a note)
    }
)

logger = logging.getLogger(__name__)


def dead_letter(
    item_id: str, stage: str, reason: str, records: int = 1, **extra: Any
) -> beam.pvalue.TaggedOutput:
    """The standard dead-letter output; `yield` it from a DoFn instead of a record.

    Args:
        item_id: stable id of the input item (file path, `subject/sequence/frame`, ...).
        stage: the step that failed (`"read"`, `"crop"`, `"validate"`, `"encode"`, ...).
        reason: human-readable cause, naming the field/file.
        records: how many records the letter stands for: 1 for a frame or a person; for a
            whole sequence that could not be read, the records it would have given (its
            frames / stride, when known). Stored as `"records"` when not 1; it is what
            `--max_dead_letter_fraction` counts (`dead_letter_records`).
        **extra: more JSON-serialisable context.
    """
    counter(f"{DEAD_LETTER_TAG}/{stage}").inc()
    payload = dead_letter_payload(item_id, stage, reason, records)
    payload.update(extra)
    return beam.pvalue.TaggedOutput(DEAD_LETTER_TAG, payload)


def dead_letter_payload(item_id: str, stage: str, reason: str, records: int = 1) -> dict:
    """The dict of a dead letter (for letters made in the driver, outside a DoFn)."""
    payload = {"id": str(item_id), "stage": str(stage), "reason": str(reason)}
    if int(records) != 1:
        payload["records"] = max(1, int(records))
    return payload


def records_for(frames: int | None, stride: int = 1) -> int:
    """Records a sequence of `frames` frames gives at `stride` (frames 0, s, 2s, ...); 1 when
    the count is unknown (None or <= 0), so an unreadable sequence still counts."""
    if frames is None or frames <= 0:
        return 1
    return len(range(0, int(frames), max(1, int(stride))))


def dead_letter_stage_counts(letters: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """{stage: number of dead letters}, sorted by stage; a letter without a stage counts
    under "unknown". One letter is one line of the dead-letter file (a whole excluded
    sequence is one letter, whatever its frame count)."""
    counts = collections.Counter(str(letter.get("stage", "unknown")) for letter in letters)
    return dict(sorted(counts.items()))


def dead_letter_records(letters: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """{stage: records the dead letters stand for}, sorted by stage: a letter's `"records"`
    (a whole sequence that could not be read), else 1."""
    counts: collections.Counter = collections.Counter()
    for letter in letters:
        counts[str(letter.get("stage", "unknown"))] += max(1, int(letter.get("records", 1)))
    return dict(sorted(counts.items()))


def _write_dead_letter_file(letters: list[dict], output_dir: str) -> dict[str, dict[str, int]]:
    lines = sorted(json.dumps(letter, sort_keys=True, default=str) for letter in letters)
    path = os.path.join(output_dir, DEAD_LETTER_FILE)
    with tf.io.gfile.GFile(path, "w") as f:
        # One write even when empty: GFile only creates the file on its first write.
        f.write("".join(line + "\n" for line in lines))
    by_stage = dead_letter_stage_counts(letters)
    if lines:
        logger.warning("%d dead-letter item(s) %s; see %s", len(lines), by_stage, path)
    return {"letters": by_stage, "records": dead_letter_records(letters)}


def write_dead_letters(dead_letters: beam.PCollection, output_dir: str) -> beam.PCollection:
    """Writes dead-letter dicts as sorted JSON lines.

    Returns a singleton PCollection holding `{"letters": {stage: letters}, "records": {stage:
    records they stand for}}` (`dead_letter_stage_counts`, `dead_letter_records`).

    Always writes `dead_letter-00000-of-00001.jsonl` (empty when nothing failed), so a listing
    of the output directory tells at a glance that the job checked.
    """
    return (
        dead_letters
        | "DeadLettersToList" >> beam.combiners.ToList()
        | "WriteDeadLetters" >> beam.Map(_write_dead_letter_file, output_dir)
    )


def dead_letter_failures(counts_by_stage: Mapping[str, int]) -> int:
    """The failures among per-stage counts (letters or records): every stage except the
    `EXCLUSION_STAGES`."""
    return int(sum(n for stage, n in counts_by_stage.items() if stage not in EXCLUSION_STAGES))


def quality_problems(
    num_examples: int, failed_records_by_stage: Mapping[str, int], max_dead_letter_fraction: float
) -> list[str]:
    """Why a finished job's output cannot be trusted (empty list: it can).

    The fraction is failed records / (failed records + written records), where a dead letter
    counts the records it stands for (`dead_letter_records`): a person, a frame, or every
    frame of a sequence whose files could not be read, so one truncated video weighs as
    much as the frames it lost, not as one frame.

    Args:
        failed_records_by_stage: {stage: records} (`dead_letter_records`); the
            `EXCLUSION_STAGES` are left out.
    """
    problems = []
    failures = dead_letter_failures(failed_records_by_stage)
    if num_examples == 0:
        problems.append("no record was written")
    total = failures + num_examples
    fraction = failures / total if total else 0.0
    if fraction > max_dead_letter_fraction:
        stages = {
            s: n for s, n in sorted(failed_records_by_stage.items()) if s not in EXCLUSION_STAGES
        }
        problems.append(
            f"{failures} of {total} items failed ({fraction:.1%} > --max_dead_letter_fraction "
            f"{max_dead_letter_fraction:.1%}; by stage {stages})"
        )
    return problems
