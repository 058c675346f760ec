"""pipelines.dead_letters: counts per stage, the records a letter stands for, the quality rule
(failures count, documented exclusions do not)."""

from pipelines import dead_letters

# A job's own dead letters: a failure and the documented exclusions of the real-data jobs.
JOB_LETTERS = [
    {"id": "x", "stage": "read", "reason": "r"},
    {"id": "S9/Greeting.54138969", "stage": "excluded", "reason": "shifted 3D"},
    {"id": "S9/Greeting.55011271", "stage": "excluded", "reason": "shifted 3D"},
    {"id": "S5/Photo.58860488", "stage": "frame_count", "reason": "7 vs 5"},
    {"id": "TS1", "stage": "invalid_frames", "reason": "2 of 6"},
    {"id": "test_set", "stage": "test_persons", "reason": "no joints"},
]


def test_dead_letter_stage_counts():
    letters = JOB_LETTERS + [{"id": "y", "stage": "read"}, {"id": "z", "reason": "no stage"}]
    counts = dead_letters.dead_letter_stage_counts(letters)
    assert counts == {
        "excluded": 2,
        "frame_count": 1,
        "invalid_frames": 1,
        "read": 2,
        "test_persons": 1,
        "unknown": 1,
    }
    assert list(counts) == sorted(counts)
    assert dead_letters.dead_letter_stage_counts([]) == {}


def test_quality_problems_count_failures_not_exclusions():
    # 2 failures (read, validate) and 5 exclusions beside 9 records: 2 / 11 items failed.
    by_stage = dead_letters.dead_letter_stage_counts(
        JOB_LETTERS + [{"id": "b", "stage": "validate"}]
    )
    assert dead_letters.dead_letter_failures(by_stage) == 2
    assert dead_letters.quality_problems(9, by_stage, 0.19) == []
    (problem,) = dead_letters.quality_problems(9, by_stage, 0.18)
    assert problem.startswith("2 of 11 items failed (18.2% > --max_dead_letter_fraction 18.0%")
    assert "{'read': 1, 'validate': 1}" in problem
    # Exclusions alone never fail a job, however many.
    assert dead_letters.quality_problems(1, {"excluded": 500, "frame_count": 40}, 0.0) == []
    assert dead_letters.quality_problems(0, {}, 1.0) == ["no record was written"]


def test_dead_letters_weigh_the_records_they_stand_for():
    assert dead_letters.records_for(10, 5) == 2  # frames 0, 5
    assert dead_letters.records_for(11, 5) == 3  # frames 0, 5, 10
    assert dead_letters.records_for(1, 5) == 1
    assert (
        dead_letters.records_for(None, 5) == 1 and dead_letters.records_for(-1) == 1
    )  # unknown: one
    # A letter's "records" is stored only when it is not 1 (frame and person letters).
    assert dead_letters.dead_letter_payload("S1/seq", "video", "truncated", 40) == {
        "id": "S1/seq",
        "stage": "video",
        "reason": "truncated",
        "records": 40,
    }
    assert "records" not in dead_letters.dead_letter_payload("S1/seq/000001", "validate", "NaN")
    letters = [
        dead_letters.dead_letter_payload("S1/a", "video", "truncated", 40),
        dead_letters.dead_letter_payload("S1/b/000003", "validate", "NaN"),
        dead_letters.dead_letter_payload("S9/c", "excluded", "known defect", 300),
    ]
    assert dead_letters.dead_letter_stage_counts(letters) == {
        "excluded": 1,
        "validate": 1,
        "video": 1,
    }
    by_records = dead_letters.dead_letter_records(letters)
    assert by_records == {"excluded": 300, "validate": 1, "video": 40}
    # One lost 40-frame video beside 100 written records: 41 of 141 failed (29 %), although
    # it is only 2 failed letters of 102 (2 %).
    (problem,) = dead_letters.quality_problems(100, by_records, 0.05)
    assert problem.startswith("41 of 141 items failed (29.1% > --max_dead_letter_fraction 5.0%")
    assert "{'validate': 1, 'video': 40}" in problem
