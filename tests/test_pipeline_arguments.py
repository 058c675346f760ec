"""pipelines.arguments: the job flags, Beam's flags passed on, the raw-data layout check."""

import pytest
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from pipelines import arguments


def test_parse_args_passes_unknown_flags_to_beam():
    def add(parser):
        parser.add_argument("--input_dir", required=True)

    args, options = arguments.parse_args(
        [
            "--input_dir",
            "/raw",
            "--output_dir",
            "/out",
            "--num_shards",
            "3",
            "--runner",
            "DirectRunner",
            "--direct_num_workers",
            "2",
            "--direct_running_mode",
            "multi_processing",
        ],
        add,
    )
    assert (args.input_dir, args.output_dir, args.num_shards, args.overwrite) == (
        "/raw",
        "/out",
        3,
        False,
    )
    assert options.view_as(StandardOptions).runner == "DirectRunner"
    assert options.view_as(DirectOptions).direct_num_workers == 2
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"


def test_parse_args_rejects_zero_shards():
    with pytest.raises(SystemExit):
        arguments.parse_args(["--output_dir", "/out", "--num_shards", "0"])


def test_check_layout_names_every_missing_pattern(tmp_path):
    (tmp_path / "S1" / "Poses").mkdir(parents=True)
    (tmp_path / "S1" / "Poses" / "Walking.cdf").write_bytes(b"x")
    found = arguments.check_layout(tmp_path, ["S1/Poses/*.cdf"], "h36m")
    assert found == {"S1/Poses/*.cdf": [str(tmp_path / "S1" / "Poses" / "Walking.cdf")]}
    with pytest.raises(FileNotFoundError) as info:
        arguments.check_layout(tmp_path, ["S1/Poses/*.cdf", "S5/*.cdf", "metadata.xml"], "h36m")
    message = str(info.value)
    assert "h36m" in message and "'S5/*.cdf'" in message and "'metadata.xml'" in message
    assert "S1/Poses" not in message
    assert "see docs/datasets.md for the expected layout" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        arguments.check_layout(tmp_path / "nope", ["a"], "mpii")
