"""pipelines.pose_checks: the reason a pose cannot become a record, naming field and joints."""

import numpy as np

from pipelines import pose_checks


def test_validate_joints_reasons():
    j2 = np.zeros((16, 2))
    j3 = np.tile([0.0, 0.0, 4000.0], (16, 1))
    assert pose_checks.validate_joints(j2, np.ones(16), j3, True) is None
    bad = j2.copy()
    bad[3, 1] = np.nan
    assert pose_checks.validate_joints(bad) == "joints_2d non-finite at visible joints [3]"
    vis = np.ones(16)
    vis[3] = 0  # an invisible joint may be NaN (MPII leaves them unannotated)
    assert pose_checks.validate_joints(bad, vis) is None
    assert pose_checks.validate_joints(j2, np.zeros(16)) == "no visible joint"
    far = j3.copy()
    far[5, 0] = 2e5
    assert "out of range" in pose_checks.validate_joints(j2, None, far, True)
    behind = j3.copy()
    behind[7, 2] = -10
    assert pose_checks.validate_joints(j2, None, behind, True).endswith("joints [7]")
    assert "shape (15, 2)" in pose_checks.validate_joints(np.zeros((15, 2)))
    outside = j2.copy()
    outside[9] = [130.0, 10.0]
    assert "joints [9]" in pose_checks.validate_joints(outside, None, None, False, (100, 100), 20)
    assert pose_checks.validate_joints(outside, None, None, False, (100, 100), 40) is None


def test_check_points_3d_names_the_field_and_the_joints():
    good = np.full((16, 3), 100.0)
    assert pose_checks.check_points_3d(good, "joints_3d_univ") is None
    bad = good.copy()
    bad[[3, 9], 1] = np.nan
    assert pose_checks.check_points_3d(bad, "joints_3d_univ") == (
        "joints_3d_univ non-finite at joints [3, 9]"
    )
    far = good.copy()
    far[0, 0] = 2 * pose_checks.MAX_ABS_MM
    assert pose_checks.check_points_3d(far, "x").startswith("x out of range")
    assert (
        pose_checks.check_points_3d(np.zeros((17, 3)), "x")
        == "x has shape (17, 3), expected (16, 3)"
    )
