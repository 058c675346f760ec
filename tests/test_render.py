"""The 3D panel: fixed per-video scale that holds the content, a ground grid, one viewpoint."""

import numpy as np

from keras_pose3d import skeleton
from keras_pose3d.data import synthetic
from keras_pose3d.inference import render


def _walk(frames=40, seed=0):
    rng = np.random.default_rng(seed)
    bones = synthetic.subject_bone_lengths(rng)
    motion = synthetic.sample_motion(rng, "dance", frames)
    body = np.stack(
        [
            synthetic.pose_from_angles({n: float(v[t]) for n, v in motion.items()}, bones)
            for t in range(frames)
        ]
    )
    return body @ np.diag([1.0, -1.0, -1.0])  # body y-up -> camera y-down, pelvis at 0


def test_reach_is_the_longest_chain():
    lengths = np.arange(1.0, 16.0)  # bone k (in skeleton.BONES order) has length k + 1
    by_child = {c: length for (c, _), length in zip(skeleton.BONES, lengths)}
    chains = []
    for j in range(16):
        total, k = 0.0, j
        while skeleton.MPII_PARENTS[k] >= 0:
            total, k = total + by_child[k], skeleton.MPII_PARENTS[k]
        chains.append(total)
    assert render.reach_mm(lengths) == max(chains)
    # r_ankle: r_ankle-r_knee (1) + r_knee-r_hip (2) + r_hip-pelvis (3) = 6 by hand.
    assert chains[0] == 6.0


def test_scene_fits_every_frame_with_one_scale():
    poses = _walk()
    scene = render.Scene.fit(poses)
    lengths = np.median(skeleton.bone_lengths(poses[: render.SCENE_FRAMES]), axis=0)
    assert scene.half_extent_mm == np.float64(1.1 * render.reach_mm(lengths))
    size = 240
    pts = scene.project(poses, size)  # (T, J, 2)
    assert pts.min() >= -0.5 and pts.max() <= size - 0.5  # nothing leaves the panel
    # The figure is not lost in the panel either: it spans >= 40 % of it in some frame.
    assert (pts[..., 1].max(-1) - pts[..., 1].min(-1)).max() > 0.4 * size
    # Ground = median lower ankle (camera y is down): the feet stand on the grid.
    ankles = poses[: render.SCENE_FRAMES, [0, 5], 1].max(axis=1)
    assert scene.ground_mm == np.median(ankles)


def test_projection_by_hand():
    scene = render.Scene(
        half_extent_mm=1000.0, ground_mm=900.0, view=render.View(yaw_deg=90.0, elevation_deg=0.0)
    )
    # Yaw 90: camera z (forward) shows as panel x; the pelvis at the centre (pixel 100), and
    # half_extent_mm at the panel's edge (pixel edge 200.5): 201 px / 2000 mm.
    got = scene.project(np.array([[0.0, 0.0, 0.0], [0.0, 500.0, 1000.0]]), 201)
    np.testing.assert_allclose(got, [[100.0, 100.0], [200.5, 150.25]], atol=1e-9)
    tilted = render.Scene(1000.0, 900.0, render.View(yaw_deg=0.0, elevation_deg=30.0))
    # Looking down 30 deg: a point 1 m in front (z) rises by sin(30) = 0.5 m on the panel.
    np.testing.assert_allclose(
        tilted.project(np.array([[0.0, 0.0, 1000.0]]), 201), [[100.0, 100.0 - 50.25]], atol=1e-9
    )


def test_panel_draws_grid_and_skeleton_and_keeps_the_view():
    poses = _walk()
    scene = render.Scene.fit(poses)
    empty = render.draw_3d([], scene, size=200)
    grid = np.any(empty != render.BACKGROUND, axis=-1)
    rows = np.nonzero(grid.any(axis=1))[0]
    assert grid.sum() > 500 and rows.min() > 100  # the floor lies below the pelvis (row 100)
    a = render.draw_3d([poses[0]], scene, size=200)
    b = render.draw_3d([poses[0]], scene, size=200)
    np.testing.assert_array_equal(a, b)
    assert (np.abs(a.astype(int) - empty).sum(-1) > 0).sum() > 100  # the skeleton is drawn
    frame = np.zeros((120, 90, 3), np.uint8)
    person = render.Person(np.full((16, 2), 10.0), np.ones(16), poses[0], box=(5, 5, 30, 30))
    assert render.side_by_side(frame, [person], scene).shape == (120, 90 + 120, 3)
