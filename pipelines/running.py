"""The skeleton of every `pipelines/*_to_tfrecord.py` job: parse, check the inputs, build,
run, verify.

A job is three functions (see `pipelines/synthetic_to_tfrecord.py` for a complete one):

    def add_arguments(parser):          # job flags; --output_dir, --num_shards, --overwrite,
        parser.add_argument("--input_dir", required=True)   # ... are added by parse_args

    def build(pipeline, args):          # -> (records, dead_letters)
        items = pipeline | beam.Create(list_items(args.input_dir))
        outs = items | beam.ParDo(MyDoFn(args.crop_size)).with_outputs(
            DEAD_LETTER_TAG, main="records")
        return outs.records, outs[DEAD_LETTER_TAG]

    def run(argv=None):
        return run_job(argv, add_arguments, build, splits=("train", "validation"),
                       dataset_name="h36m", required_layout=lambda a: (a.input_dir, [...]))

    main = job_main(run)

`records` is a PCollection of `(split, item_id, record)` where `record` is a
`keras_pose3d.data.features.PoseRecord` dict. `run_job` validates and encodes them
(`sharded_write.EncodeRecords`: bad joints go to the dead letter, never silently away), writes
deterministic sharded TFRecords, the dead-letter JSON lines and `manifest.json`, runs the
pipeline and then checks that every file holds exactly the records the manifest counts. A job
that wrote nothing, or whose failed items exceed `--max_dead_letter_fraction`, gets
`"complete": false` and its `problems` in the manifest and raises `DataQualityError` (the
command exits 2).

Faults: the output folder is checked writable before any work (`prepare_output_dir` ->
`check_output_writable`: a read-only or full target fails in a second). A job that fails
(a full disk at the shard writers, a short shard at verification) leaves no manifest that says
complete (`mark_incomplete`), and a storage error behind Beam's wrapping is raised as one
OSError naming the folder (the command prints one `error:` line, exit 2).

Conventions:
  * Inputs: list and read them through `keras_pose3d.data.readers.files` (tf.io.gfile), so
    any filesystem TensorFlow knows works (gs://, s3://, hdfs://, ram:// in tests); decode
    images with `keras_pose3d.data.readers.images.decode_bgr` (refuses truncated files);
    refuse dataset-derived names that leave the input root (`files.escapes_root`).
  * Runner: without `--runner` (or with DirectRunner) `local_runner` pins Beam's FnApiRunner,
    so Beam never tries to download Prism.
  * Items that give no record, counters: `pipelines.dead_letters`; the person crop:
    `pipelines.person_crop`; pose checks: `pipelines.pose_checks`; the output files:
    `pipelines.sharded_write` and `keras_pose3d.data.manifest`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import apache_beam as beam
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from keras_pose3d import atomic_files
from keras_pose3d.cli import TF_ERRORS
from keras_pose3d.data.manifest import MANIFEST_NAME, manifest_is_complete, read_manifest
from keras_pose3d.data.readers import files
from pipelines.arguments import check_layout, parse_args
from pipelines.dead_letters import DEAD_LETTER_PREFIX
from pipelines.sharded_write import TMP_INFIX, write_outputs


class DataQualityError(ValueError):
    """A job ran but its output cannot be trusted (too many dead letters, nothing written)."""


logger = logging.getLogger(__name__)


def count_records(path: str) -> int:
    """Number of records in one TFRecord file."""
    return sum(1 for _ in tf.data.TFRecordDataset(path))


def verify_output(output_dir: str, require_complete: bool = True) -> dict[str, Any]:
    """Checks every shard holds exactly the records the manifest counts.

    Args:
        require_complete: also refuse a manifest marked incomplete (`complete` false).

    Raises:
        RuntimeError: no (complete) manifest, or a shard missing or whose record count differs.
    """
    manifest = read_manifest(output_dir)
    if require_complete and not manifest_is_complete(output_dir):
        raise RuntimeError(f"{output_dir}: no complete manifest.json or a shard is missing")
    if manifest is None:
        raise RuntimeError(f"{output_dir}: no manifest.json")
    for entry in manifest["splits"].values():
        for name, expected in zip(entry["files"], entry["shard_sizes"]):
            got = count_records(os.path.join(output_dir, name))
            if got != expected:
                raise RuntimeError(
                    f"{output_dir}/{name}: {got} records on disk, manifest says {expected}"
                )
    return manifest


def _output_files(output_dir: str) -> list[str]:
    patterns = [
        "*-?????-of-?????.tfrecord",
        f"{DEAD_LETTER_PREFIX}-*.jsonl",
        MANIFEST_NAME,
        # Partial files of killed writers (shards, manifest).
        f"*-?????-of-?????.tfrecord{TMP_INFIX}*",
        f"{MANIFEST_NAME}.tmp",
    ]
    return sorted(p for pat in patterns for p in tf.io.gfile.glob(os.path.join(output_dir, pat)))


def _storage_error(path: str, action: str, err: tf.errors.OpError) -> OSError:
    """A TensorFlow file-system error as an OSError naming `path` (cli prints it as one line)."""
    reason = err.message.split("; ", 1)[-1] if "; " in err.message else err.message
    return OSError(f"{path}: cannot {action} ({reason})")


def check_output_writable(output_dir: str) -> None:
    """Raises OSError naming `output_dir` unless files can be written there: local folders
    through `atomic_files.check_writable` (a probe written, flushed, removed), others (gs://,
    ...) through a small probe file written and removed with tf.io.gfile. A read-only or full
    target fails before any work instead of at the shard writers, an hour later."""
    if files.is_local(output_dir):
        atomic_files.check_writable(output_dir.removeprefix("file://"))
        return
    probe = os.path.join(output_dir, f"{atomic_files.TMP_PREFIX}writable-probe-{os.getpid()}")
    try:
        with tf.io.gfile.GFile(probe, "wb") as f:
            f.write(b"\0" * 4096)
        tf.io.gfile.remove(probe)
    except tf.errors.OpError as err:
        raise _storage_error(output_dir, "write in the output folder", err) from err


def prepare_output_dir(output_dir: str, overwrite: bool) -> None:
    """Creates `output_dir`; refuses (or, with `overwrite`, deletes our files) when a previous
    job's shards or manifest are there, so stale shards never mix with new ones; then checks
    that the folder is writable (`check_output_writable`).

    Raises:
        FileExistsError: outputs of a previous job are there and `overwrite` is false.
        OSError: the folder cannot be created or written (read-only, no permission, full).
    """
    try:
        tf.io.gfile.makedirs(output_dir)
    except tf.errors.OpError as err:
        raise _storage_error(output_dir, "create the output folder", err) from err
    existing = _output_files(output_dir)
    if existing and not overwrite:
        raise FileExistsError(
            f"{output_dir} already holds {len(existing)} output file(s) (e.g. "
            f"{os.path.basename(existing[0])}); pass --overwrite to replace them"
        )
    check_output_writable(output_dir)
    for path in existing:
        try:
            tf.io.gfile.remove(path)
        except tf.errors.OpError as err:
            raise _storage_error(path, "remove the previous output", err) from err


def mark_incomplete(output_dir: str, problem: str) -> None:
    """After a failed job: no manifest in `output_dir` may say complete. A complete manifest
    (written before the failure, e.g. verification found a short shard) is rewritten with
    `complete` false and `problem`; a partial manifest temporary is removed. Best effort: the
    storage that failed may refuse these writes too, which is logged, not raised."""
    path = os.path.join(output_dir, MANIFEST_NAME)
    try:
        if tf.io.gfile.exists(path + ".tmp"):
            tf.io.gfile.remove(path + ".tmp")
        manifest = read_manifest(output_dir)
        if manifest is None or not manifest.get("complete"):
            return
        manifest["complete"] = False
        manifest["problems"] = [*manifest.get("problems", []), problem]
        with tf.io.gfile.GFile(path + ".tmp", "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True, default=str)
        tf.io.gfile.rename(path + ".tmp", path, overwrite=True)
    except (tf.errors.OpError, OSError, ValueError) as err:
        # Still not complete for readers if the manifest is gone; say so if one remains.
        with contextlib.suppress(tf.errors.OpError, OSError):
            if tf.io.gfile.exists(path):
                tf.io.gfile.remove(path)
        logger.warning("%s: could not mark the output incomplete (%s)", output_dir, err)


def _environment_cause(error: BaseException) -> BaseException | None:
    """The storage error (OSError, a TensorFlow file-system error) behind `error`: Beam's
    runner re-raises a failed DoFn's exception as a RuntimeError carrying it as context."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) or (
            isinstance(error, tf.errors.OpError) and type(error).__name__ in TF_ERRORS
        ):
            return error
        error = error.__cause__ or error.__context__
    return None


def is_direct_runner(name: str | None) -> bool:
    """True when `--runner` names Beam's DirectRunner (or is absent), spelled any way Beam's
    `create_runner` accepts: `DirectRunner`, `direct`, `directrunner`, the class path
    `apache_beam.runners.direct.direct_runner.DirectRunner`, `SwitchingDirectRunner`."""
    if name is None:
        return True
    short = name.rsplit(".", 1)[-1].lower()
    if not short.endswith("runner"):
        short += "runner"  # Beam's own rule: "direct" -> "directrunner"
    return short in ("directrunner", "switchingdirectrunner")


def local_runner(options: PipelineOptions) -> beam.runners.PipelineRunner | None:
    """The runner for `beam.Pipeline`: the FnApiRunner when the local DirectRunner is meant.

    Beam 2.77's DirectRunner first tries Prism, which it downloads from github.com at start
    (on an offline machine it fails, logs the exception and falls back to the FnApiRunner).
    When `--runner` is absent or names the DirectRunner (`is_direct_runner`: `direct`,
    `DirectRunner`, its class path), this builds the FnApiRunner exactly as the DirectRunner
    does (pipeline options made available to workers; `--direct_num_workers` and
    `--direct_running_mode` are read by the FnApiRunner itself), so no download is ever
    attempted. (The DirectRunner would pick its BundleBasedDirectRunner for streaming
    pipelines and TestStream; the jobs are batch pipelines, which it runs on the FnApiRunner.) Any other `--runner` (PrismRunner, PortableRunner, DataflowRunner,
    FlinkRunner, ...) returns None: Beam creates it from the options.
    """
    from apache_beam.options.pipeline_options import StandardOptions

    if not is_direct_runner(options.view_as(StandardOptions).runner):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import (
        JobServiceHandle,
    )

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    return fn_runner.FnApiRunner(
        provision_info=fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
        )
    )


def run_job(
    argv: Sequence[str] | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None,
    build: Callable[[beam.Pipeline, argparse.Namespace], tuple[beam.PCollection, Any]],
    splits: Sequence[str],
    dataset_name: str,
    required_layout: Callable[[argparse.Namespace], tuple[str, list[str]]] | None = None,
    shard_by: str = "example",
    description: str | None = None,
) -> dict[str, Any]:
    """Parses args, checks inputs, builds, runs and verifies a job. Returns the manifest.

    Args:
        argv: command line (None: sys.argv[1:]).
        add_arguments: adds the job's flags to the parser.
        build: (pipeline, args) -> (records, dead_letters or None); records are
            `(split, item_id, PoseRecord)`.
        splits: every split the job emits.
        dataset_name: for errors and logs.
        required_layout: args -> (input_dir, patterns) checked by `check_layout` first.
        shard_by: see `write_split`.
        description: argparse description.

    Raises:
        DataQualityError: the job ran but wrote nothing, or more than
            `--max_dead_letter_fraction` of its items failed; the manifest is written with
            `complete` false and its `problems`.
    """
    args, options = parse_args(argv, add_arguments, description)
    if required_layout is not None:
        input_dir, patterns = required_layout(args)
        check_layout(input_dir, patterns, dataset_name)
    prepare_output_dir(args.output_dir, args.overwrite)
    job_args = {k: v for k, v in sorted(vars(args).items())}
    try:
        with beam.Pipeline(runner=local_runner(options), options=options) as pipeline:
            records, dead_letters = build(pipeline, args)
            write_outputs(
                records,
                dead_letters,
                args.output_dir,
                args.num_shards,
                splits,
                job_args,
                shard_by,
                args.max_dead_letter_fraction,
                args.target_shard_mb * 2**20,
            )
        manifest = verify_output(args.output_dir, require_complete=False)
    except Exception as err:
        mark_incomplete(args.output_dir, f"the job failed: {type(err).__name__}: {err}")
        cause = _environment_cause(err)
        if cause is None:
            raise
        from keras_pose3d.cli import error_message

        raise OSError(
            f"{dataset_name}: writing {args.output_dir} failed: {error_message(cause)}. "
            "No complete manifest.json is there: readers treat the folder as incomplete; "
            "free space or fix the folder, then rerun with --overwrite"
        ) from err
    if not manifest.get("complete"):
        raise DataQualityError(
            f"{dataset_name}: {'; '.join(manifest.get('problems', [])) or 'incomplete'}. "
            f"The output in {args.output_dir} is marked incomplete; see "
            f"{os.path.join(args.output_dir, manifest['dead_letter_file'])} for every failed "
            "item and its reason"
        )
    logger.info(
        "%s: wrote %d examples (%s), %d dead letters %s to %s",
        dataset_name,
        manifest["num_examples"],
        {s: e["num_examples"] for s, e in manifest["splits"].items()},
        manifest["dead_letter_count"],
        manifest["dead_letter_by_stage"],
        args.output_dir,
    )
    return manifest


def job_main(run: Callable[[Sequence[str] | None], Any]) -> Callable[..., int]:
    """A job's command-line `main` around its `run(argv) -> manifest`: bad input (layout,
    flags, values) prints `error: ...` naming what is wrong and returns 2."""
    from keras_pose3d.cli import debug_requested, exits_cleanly

    @exits_cleanly
    def main(argv: Sequence[str] | None = None) -> int:
        if not debug_requested(argv):
            # Beam logs a failed DoFn's traceback before re-raising it; the error line says
            # what failed (--debug or KP3D_DEBUG=1 keeps the tracebacks).
            for name in ("apache_beam.runners.common", "apache_beam.runners.worker.sdk_worker"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
        run(argv)
        return 0

    main.__doc__ = "Command-line entry: runs the job; bad input exits 2 with the message."
    return main
