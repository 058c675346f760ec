"""windows: offsets of both modes, target position, edge padding, never crossing sequences."""

import numpy as np
import pytest

from keras_pose3d.data import windows


def test_window_offsets_online_and_semi_online():
    np.testing.assert_array_equal(windows.window_offsets(4, "online"), [-3, -2, -1, 0])
    np.testing.assert_array_equal(windows.window_offsets(4, "semi_online"), [-2, -1, 0, 1])
    np.testing.assert_array_equal(windows.window_offsets(5, "semi_online"), [-2, -1, 0, 1, 2])
    # The paper's Bi-TP-Net split for N = 20: 10 frames before, the current one, 9 after.
    semi = windows.window_offsets(20, "semi_online")
    assert (semi.min(), semi.max(), len(semi)) == (-10, 9, 20)
    assert windows.target_index(20, "online") == 19
    assert windows.target_index(20, "semi_online") == 10
    assert windows.target_index(1, "semi_online") == 0
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="window must be a whole number"):
            windows.window_offsets(bad, "online")
    np.testing.assert_array_equal(windows.window_offsets(3.0, "online"), [-2, -1, 0])
    with pytest.raises(ValueError, match="mode"):
        windows.window_offsets(4, "offline")


def test_window_indices_pad_by_repeating_first_and_last_frame():
    np.testing.assert_array_equal(
        windows.window_indices(5, 3, "online"),
        [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]],
    )
    np.testing.assert_array_equal(
        windows.window_indices(5, 4, "semi_online"),
        [[0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 4]],
    )
    # A window longer than the sequence: every index stays inside it.
    np.testing.assert_array_equal(
        windows.window_indices(2, 4, "online"), [[0, 0, 0, 0], [0, 0, 0, 1]]
    )
    with pytest.raises(ValueError, match="length"):
        windows.window_indices(0, 3, "online")


def test_make_windows_gathers_the_poses_of_each_window():
    seq = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((5, 2, 3), np.float32)
    online = windows.make_windows(seq, 3, "online")
    assert online.shape == (5, 3, 2, 3)
    np.testing.assert_array_equal(online[..., 0, 0], windows.window_indices(5, 3, "online"))
    np.testing.assert_array_equal(online[3], seq[[1, 2, 3]])
    semi = windows.make_windows(seq, 4, "semi_online")[..., 0, 0]  # frame ids
    np.testing.assert_array_equal(semi[0], [0, 0, 0, 1])
    np.testing.assert_array_equal(semi[4], [2, 3, 4, 4])
    with pytest.raises(ValueError, match="sequence must be"):
        windows.make_windows(np.zeros((0, 2, 3)), 3, "online")
