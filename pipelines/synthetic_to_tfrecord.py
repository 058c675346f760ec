"""Beam job: the synthetic default dataset (keras_pose3d/data/synthetic.py) as TFRecords.

    python -m pipelines.synthetic_to_tfrecord --output_dir data/synthetic --num_subjects 6 \
        --sequences_per_subject 2 --frames_per_sequence 100 --crop_size 128 --seed 0

Writes `train-*` (3D subjects and the 2D-only `2d_*` subjects), `validation-*` and, with
`--num_test_subjects`, `test-*` (the last subjects, 3D) shards, `manifest.json` and the
dead-letter file via `pipelines.running`. The output is a pure function of the flags: reruns
are byte-identical. Any Beam flag passes through (e.g. `--direct_num_workers=2
--direct_running_mode=multi_processing`).

`ensure_synthetic_dataset` is the trainer's entry: it runs this job unless a complete dataset
made with the same parameters is already there.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import apache_beam as beam

from keras_pose3d.config import SyntheticConfig
from keras_pose3d.data import synthetic
from keras_pose3d.data.manifest import manifest_is_complete, read_manifest
from pipelines import counters, running

SPLITS = ("train", "validation", "test")  # test only with --num_test_subjects


# The dataset's fields that are job flags of their own; num_shards is the common --num_shards.
_FLAGS = tuple(f.name for f in dataclasses.fields(SyntheticConfig) if f.name != "num_shards")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The generator's flags (defaults of `SyntheticConfig`)."""
    defaults = SyntheticConfig()
    parser.add_argument("--num_subjects", type=int, default=defaults.num_subjects)
    parser.add_argument("--sequences_per_subject", type=int, default=defaults.sequences_per_subject)
    parser.add_argument("--frames_per_sequence", type=int, default=defaults.frames_per_sequence)
    parser.add_argument("--crop_size", type=int, default=defaults.crop_size)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--num_2d_subjects", type=int, default=None, help="2D-only subjects (default N // 3)."
    )
    parser.add_argument(
        "--num_validation_subjects", type=int, default=None, help="Validation subjects (1)."
    )
    parser.add_argument(
        "--num_test_subjects",
        type=int,
        default=defaults.num_test_subjects,
        help="Test subjects (0).",
    )
    parser.add_argument("--min_elevation_deg", type=float, default=defaults.min_elevation_deg)
    parser.add_argument("--max_elevation_deg", type=float, default=defaults.max_elevation_deg)


def params_from_args(args: argparse.Namespace) -> SyntheticConfig:
    """The dataset the flags ask for (its `num_shards` stays the default: the records do not
    depend on it, the job shards by `--num_shards`)."""
    return SyntheticConfig(**{name: getattr(args, name) for name in _FLAGS})


class RenderSequence(beam.DoFn):
    """(subject_index, sequence_index) -> (split, item_id, PoseRecord) per frame."""

    def __init__(self, params: SyntheticConfig):
        self._params = params

    def process(self, element):
        subject_index, sequence_index = element
        for item in synthetic.generate_sequence(self._params, subject_index, sequence_index):
            counters.counter("frames_rendered").inc()
            yield item


def build(pipeline: beam.Pipeline, args: argparse.Namespace):
    """(records, dead letters) for `running.run_job`."""
    params = params_from_args(args)
    records = (
        pipeline
        | "Sequences" >> beam.Create(synthetic.list_sequences(params))
        # One sequence per element: spread them over workers before rendering.
        | "Spread" >> beam.Reshuffle()
        | "Render" >> beam.ParDo(RenderSequence(params))
    )
    return records, None


def run(argv: Sequence[str] | None = None) -> dict:
    """Runs the job; returns the manifest."""
    return running.run_job(
        argv,
        add_arguments,
        build,
        splits=SPLITS,
        dataset_name=synthetic.DATASET_NAME,
        description=__doc__.splitlines()[0],
    )


main = running.job_main(run)


def ensure_synthetic_dataset(
    output_dir: str | os.PathLike, beam_args: Sequence[str] = (), **params: Any
) -> bool:
    """Generates the synthetic dataset into `output_dir` unless a complete one is there.

    Args:
        output_dir: destination directory.
        beam_args: extra Beam flags (e.g. ["--direct_num_workers=2",
            "--direct_running_mode=multi_processing"]).
        **params: `SyntheticConfig` fields (num_subjects, sequences_per_subject,
            frames_per_sequence, crop_size, num_shards, seed, num_2d_subjects,
            num_validation_subjects); the others keep their defaults.

    Returns:
        True when it generated the data, False when a complete dataset was already there.

    Raises:
        ValueError: an existing complete dataset was made with other parameters (delete it
            or choose another directory), or the parameters are invalid.
    """
    config = SyntheticConfig(**params)  # validates
    output_dir = os.fspath(output_dir)
    wanted = dataclasses.asdict(config)
    if manifest_is_complete(output_dir):
        job_args = read_manifest(output_dir).get("job_args", {})
        # A key the manifest lacks was added later; the data was made with its default.
        defaults = dataclasses.asdict(SyntheticConfig())
        differ = {
            k: (job_args.get(k, defaults[k]), v)
            for k, v in wanted.items()
            if job_args.get(k, defaults[k]) != v
        }
        if differ:
            raise ValueError(
                f"{output_dir} holds a synthetic dataset made with other parameters "
                f"(existing, requested): {differ}; delete it or use another data_dir"
            )
        return False
    argv = [f"--output_dir={output_dir}", "--overwrite"]
    argv += [f"--{key}={value}" for key, value in wanted.items() if value is not None]
    run([*argv, *beam_args])
    return True


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))
