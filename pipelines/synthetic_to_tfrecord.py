"""Beam job: the synthetic default dataset (keras_pose3d/data/synthetic.py) as TFRecords.

    python -m pipelines.synthetic_to_tfrecord --output_dir data/synthetic --num_subjects 6 \
        --sequences_per_subject 2 --frames_per_sequence 100 --crop_size 128 --seed 0

Writes `train-*` (3D subjects and the 2D-only `2d_*` subjects) and `validation-*` (the last
subject(s), 3D) shards, `manifest.json` and the dead-letter file via `pipelines.common`. The
output is a pure function of the flags: reruns are byte-identical. Any Beam flag passes
through (e.g. `--direct_num_workers=2 --direct_running_mode=multi_processing`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import apache_beam as beam

from keras_pose3d.data import synthetic
from pipelines import common

SPLITS = ("train", "validation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The generator's flags (defaults of `synthetic.SyntheticParams`)."""
    defaults = synthetic.SyntheticParams()
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


def params_from_args(args: argparse.Namespace) -> synthetic.SyntheticParams:
    return synthetic.SyntheticParams(
        num_subjects=args.num_subjects,
        sequences_per_subject=args.sequences_per_subject,
        frames_per_sequence=args.frames_per_sequence,
        crop_size=args.crop_size,
        seed=args.seed,
        num_2d_subjects=args.num_2d_subjects,
        num_validation_subjects=args.num_validation_subjects,
    )


class RenderSequence(beam.DoFn):
    """(subject_index, sequence_index) -> (split, item_id, PoseRecord) per frame."""

    def __init__(self, params: synthetic.SyntheticParams):
        self._params = params

    def process(self, element):
        subject_index, sequence_index = element
        for item in synthetic.generate_sequence(self._params, subject_index, sequence_index):
            common.counter("frames_rendered").inc()
            yield item


def build(pipeline: beam.Pipeline, args: argparse.Namespace):
    """(records, dead letters) for `common.run_job`."""
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
    return common.run_job(
        argv,
        add_arguments,
        build,
        splits=SPLITS,
        dataset_name=synthetic.DATASET_NAME,
        description=__doc__.splitlines()[0],
    )


main = common.job_main(run)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main(sys.argv[1:]))
