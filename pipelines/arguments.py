"""A Beam job's command line and the raw-data layout it names, checked before any work starts.

`parse_args` adds the flags every job has (`--output_dir`, `--num_shards`, `--target_shard_mb`,
`--max_dead_letter_fraction`, `--overwrite`) to the job's own and hands every flag it does not
know (`--runner`, Flink / Dataflow flags) to Beam; `check_layout` lists every missing input
pattern at once, so a wrong `--input_dir` fails in a second, not after an hour.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterable, Sequence

from apache_beam.options.pipeline_options import PipelineOptions

from keras_pose3d.data.readers import files
from pipelines.dead_letters import DEFAULT_MAX_DEAD_LETTER_FRACTION
from pipelines.sharded_write import DEFAULT_TARGET_SHARD_MB


def parse_args(
    argv: Sequence[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    description: str | None = None,
) -> tuple[argparse.Namespace, PipelineOptions]:
    """Parses job flags and hands every other flag to Beam.

    Adds the flags every job has: `--output_dir` (required), `--num_shards` (per split;
    default: from the data, `--target_shard_mb` per shard), `--max_dead_letter_fraction`
    and `--overwrite`. `add_arguments(parser)` adds the job's own (e.g. `--input_dir`). Flags
    the parser does not know (`--runner`, `--direct_num_workers`,
    `--direct_running_mode=multi_processing`, Flink/Dataflow flags) become `PipelineOptions`.

    Returns:
        (job args, Beam pipeline options).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output_dir", required=True, help="Directory for the TFRecords.")
    parser.add_argument(
        "--num_shards",
        type=int,
        default=None,
        help="TFRecord shards per split (default: ceil(split bytes / --target_shard_mb)).",
    )
    parser.add_argument(
        "--target_shard_mb",
        type=float,
        default=DEFAULT_TARGET_SHARD_MB,
        help=f"Shard size aimed at when --num_shards is not given (default "
        f"{DEFAULT_TARGET_SHARD_MB} MB).",
    )
    parser.add_argument(
        "--max_dead_letter_fraction",
        type=float,
        default=DEFAULT_MAX_DEAD_LETTER_FRACTION,
        help="Fail the job (exit non-zero, manifest incomplete) when failed records exceed this "
        "fraction of failed plus written records (a lost sequence counts its frames); "
        "documented exclusions do not count (default "
        f"{DEFAULT_MAX_DEAD_LETTER_FRACTION}).",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="Replace existing shards/manifest in --output_dir instead of refusing.",
    )
    if add_arguments is not None:
        add_arguments(parser)
    args, beam_args = parser.parse_known_args(None if argv is None else list(argv))
    if args.num_shards is not None and args.num_shards < 1:
        parser.error(f"--num_shards must be >= 1. Received: num_shards={args.num_shards}")
    if not args.target_shard_mb > 0:
        parser.error(f"--target_shard_mb must be > 0. Received: {args.target_shard_mb}")
    if not 0.0 <= args.max_dead_letter_fraction <= 1.0:
        parser.error(
            "--max_dead_letter_fraction must be in [0, 1]. "
            f"Received: {args.max_dead_letter_fraction}"
        )
    return args, PipelineOptions(beam_args)


def check_layout(
    input_dir: str | os.PathLike, required: Iterable[str], dataset_name: str
) -> dict[str, list[str]]:
    """Checks the raw-data layout before any work starts.

    Args:
        input_dir: root of the raw dataset, any `tf.io.gfile` path (local, gs://, s3://, ...).
        required: paths or glob patterns relative to `input_dir` (e.g.
            `"S1/MyPoseFeatures/D3_Positions/*.cdf"`), or absolute / URL patterns; each must
            match at least one path.
        dataset_name: named in the error.

    Returns:
        pattern -> sorted matching paths.

    Raises:
        FileNotFoundError: listing every missing pattern (not just the first), the input
            directory and the dataset.
    """
    root = os.fspath(input_dir)
    files.check_filesystem(root)
    if not files.isdir(root):
        raise FileNotFoundError(f"{dataset_name}: input directory {root!r} does not exist")
    found: dict[str, list[str]] = {}
    missing: list[str] = []
    for pattern in required:
        full = pattern if files.has_scheme(pattern) else files.join(root, pattern)
        matches = files.glob(full)
        if matches:
            found[pattern] = matches
        else:
            missing.append(pattern)
    if missing:
        raise FileNotFoundError(
            f"{dataset_name}: the raw data in {root!r} is incomplete; nothing matches "
            + ", ".join(repr(m) for m in missing)
            + " (see docs/datasets.md for the expected layout)"
        )
    return found
