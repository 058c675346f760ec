"""pipelines.running: stale output refused, and the local runner pinned (Beam's DirectRunner
would try to download Prism first)."""

import os

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from pipelines import running


@pytest.mark.parametrize(
    "stale",
    [
        ["train-00000-of-00001.tfrecord"],
        # Partial files of a killed run (a shard's temporary, the manifest's).
        ["train-00000-of-00002.tfrecord.tmp-0123abcd", "manifest.json.tmp"],
    ],
)
def test_prepare_output_dir_refuses_stale_files(tmp_path, stale):
    for name in stale:
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=f"{len(stale)} output file.*--overwrite"):
        running.prepare_output_dir(str(tmp_path), overwrite=False)
    running.prepare_output_dir(str(tmp_path), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


class _PrismStarted(Exception):
    pass


def _forbid_prism(monkeypatch):
    from apache_beam.runners.portability import prism_runner

    started = []

    def refuse(self, *args, **kwargs):
        started.append(True)
        raise _PrismStarted("the PrismRunner was created (it downloads its binary)")

    monkeypatch.setattr(prism_runner.PrismRunner, "__init__", refuse)
    return started


@pytest.mark.beam
@pytest.mark.parametrize("runner_flags", [[], ["--runner", "DirectRunner"]])
def test_jobs_never_start_prism(tmp_path, monkeypatch, runner_flags):
    from pipelines import synthetic_to_tfrecord

    started = _forbid_prism(monkeypatch)
    argv = [
        f"--output_dir={tmp_path / 'out'}",
        "--num_subjects=3",
        "--sequences_per_subject=1",
        "--frames_per_sequence=1",
        "--crop_size=16",
        "--num_shards=1",
        *runner_flags,
    ]
    assert synthetic_to_tfrecord.run(argv)["num_examples"] == 3
    assert started == []
    # Control: Beam's own DirectRunner does try to start Prism on the same kind of pipeline.
    with pytest.raises(_PrismStarted), beam.Pipeline() as p:
        _ = p | beam.Create([1, 2]) | beam.Map(lambda x: x)
    assert started == [True]


def test_local_runner_only_replaces_the_direct_runner():
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    # Every spelling Beam's create_runner resolves to the DirectRunner is pinned.
    direct = [
        [],
        ["--runner=DirectRunner"],
        ["--runner=direct"],
        ["--runner=directrunner"],
        ["--runner=apache_beam.runners.direct.direct_runner.DirectRunner"],
        ["--runner=SwitchingDirectRunner"],
    ]
    for flags in direct:
        assert isinstance(running.local_runner(PipelineOptions(flags)), fn_runner.FnApiRunner)
    for name in (
        "PortableRunner",
        "PrismRunner",
        "prism",
        "DataflowRunner",
        "FlinkRunner",
        "BundleBasedDirectRunner",  # never tries Prism: Beam builds it
    ):
        assert running.local_runner(PipelineOptions([f"--runner={name}"])) is None


@pytest.mark.beam
@pytest.mark.parametrize(
    "mode, environment",
    [
        ("multi_threading", "EmbeddedPythonGrpcEnvironment"),
        ("in_memory", "EmbeddedPythonEnvironment"),
    ],
)
def test_local_runner_honours_the_direct_runner_flags(mode, environment):
    # The pinned runner reads --direct_num_workers / --direct_running_mode as the
    # DirectRunner's FnApiRunner does (not just: it runs).
    options = PipelineOptions(["--direct_num_workers=3", f"--direct_running_mode={mode}"])
    runner = running.local_runner(options)
    with beam.Pipeline(runner=runner, options=options) as p:
        got = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
        assert_that(got, equal_to([2, 4, 6]))
    assert runner._num_workers == 3
    assert type(runner._default_environment).__name__ == environment
