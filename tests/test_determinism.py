"""Runs that repeat: why a busy machine parted the main job (docs/design.md, "Runs that
repeat"), and what `runtime.deterministic` does against each cause.

1. A oneDNN primitive called from a thread of TensorFlow's intra-op pool runs single-threaded,
   and its reductions add in another order than the same primitive given the whole pool: the
   gradient of a convolution + batch normalisation depends on the thread count (oneDNN off).
2. AddN writes into one of its input buffers when no other op still holds it, and moves that
   input to the front of the sum, so which order it adds in depends on which other consumers
   have finished: thread scheduling. Gradients summed by tf.GradientTape and chains of adds
   merged by Grappler's arithmetic optimizer are AddN ops. Caught in three copies of the
   structure stage run at once: same weights, same batch, same forward pass, one of them got
   another gradient at step 245 (stem layers only, 1e-7 relative). The tests show the
   mechanism deterministically and check that the trainer's step has no AddN of more than two
   inputs under `runtime.deterministic` (training/sums.py).
"""

import json
import os
import pathlib
import platform
import subprocess
import sys
import textwrap

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_CONV_GRADIENT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((16, 32, 32, 64)).astype(np.float32))
    w = tf.Variable(rng.standard_normal((3, 3, 64, 64)).astype(np.float32) * 0.05)
    g = tf.constant(rng.standard_normal((16, 32, 32, 64)).astype(np.float32))
    bn = tf.keras.layers.BatchNormalization()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(bn(tf.nn.conv2d(x, w, 1, "SAME"), training=True) * g)
    np.save(sys.argv[2], tape.gradient(loss, w).numpy())
    """
)


def _python(code_or_path, *args, env=None, **kwargs):
    argv = (
        [sys.executable, "-c", code_or_path]
        if "\n" in code_or_path
        else [sys.executable, code_or_path]
    )
    return subprocess.Popen(
        [*argv, *map(str, args)],
        cwd=ROOT,
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or (os.cpu_count() or 1) < 2,
    reason="TensorFlow's oneDNN kernels are the x86 build's; needs 2 cores",
)
def test_onednn_gradient_depends_on_the_threads_it_gets(tmp_path):
    """Same inputs, oneDNN on: the filter gradient with 1 thread differs from the one with 2
    (what a primitive called from a pool thread gets), by about 1e-6 of its size."""
    out = {}
    for threads in (1, 2):
        out[threads] = tmp_path / f"dw_{threads}.npy"
        p = _python(_CONV_GRADIENT, threads, out[threads], env={"TF_ENABLE_ONEDNN_OPTS": "1"})
        assert p.wait(timeout=120) == 0, p.stderr.read()
    one, two = np.load(out[1]), np.load(out[2])
    relative = np.abs(one - two).max() / np.abs(one).max()
    assert not np.array_equal(one, two)
    assert 1e-9 < relative < 1e-4


_ADDN_ORDER = textwrap.dedent(
    """
    import json
    import tensorflow as tf
    from keras_pose3d.training import sums
    x, y, z, one = (tf.constant([v]) for v in (1e8, -1e8, 1.0, 1.0))
    out = {}
    for mode in ("default", "fixed"):
        if mode == "fixed":
            sums.fixed_order_sums()  # read when a function is traced: the ones below are new

        @tf.function
        def add_n_of_a_temporary(x, y, z, s):
            return tf.add_n([x, y, z * s])  # z * s: a buffer AddN may write into

        @tf.function
        def chain(x, y, z, s):
            return (x + y) + z * s  # Grappler's arithmetic optimizer may merge it into one AddN

        out[mode] = {
            "add_n": float(add_n_of_a_temporary(x, y, z, one)[0]),
            "chain": float(chain(x, y, z, one)[0]),
        }
    print(json.dumps(out))
    """
)


def test_add_n_order_follows_the_buffer_it_reuses():
    """1e8 + -1e8 + 1 in order is 1; AddN writing into the third input's buffer adds it first
    ((1 + -1e8) + 1e8 = 0 in float32). A plain chain of adds is merged into such an AddN by
    Grappler, unless `fixed_order_sums` turned the arithmetic optimizer off."""
    p = _python(_ADDN_ORDER)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    in_order = float((np.float32(1e8) + np.float32(-1e8)) + np.float32(1.0))
    assert in_order == 1.0
    for mode in ("default", "fixed"):
        assert got[mode]["add_n"] == 0.0  # the kernel's reordering, whatever the optimizer does
    assert got["default"]["chain"] == 0.0
    assert got["fixed"]["chain"] == in_order


_TRAIN_STEP_SUMS = textwrap.dedent(
    """
    import json, tempfile
    import tensorflow as tf
    from keras_pose3d import config as kc
    from keras_pose3d.training import sums, trainer as tr
    cfg = kc.load_config("configs/quickstart.yaml", overrides=[
        "model.num_stacks=1", "model.num_features=16", "model.hourglass_depth=1",
        "model.depth_blocks=1",
        "data.input_size=32", "data.heatmap_size=8"])
    t = tr.Trainer(cfg, run_dir=tempfile.mkdtemp(), progress=lambda s: None)
    stage = cfg.train.stages[-1]  # every loss, every part trainable
    tr._set_trainable(t.model, stage)
    B, S, h, J = 4, 32, 8, 16
    batch = ({"image": tf.random.uniform((B, S, S, 3), seed=1)}, {
        "heatmaps": tf.random.uniform((B, h, h, J), seed=2), "visibility": tf.ones((B, J)),
        "pose_2d": tf.random.uniform((B, J, 2), -1, 1, seed=3),
        "depth": tf.random.uniform((B, J), -1, 1, seed=4),
        "has_3d": tf.constant([0.0, 0.0, 1.0, 1.0]), "joints_3d": tf.zeros((B, J, 3)),
        "intrinsics": tf.ones((B, 4)), "root_depth": tf.ones((B,))})
    iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
    out = {}
    for mode in ("default", "deterministic"):
        if mode == "deterministic":
            sums.fixed_order_sums()  # read when the step below is traced
        step = t._make_step(stage, tr._make_optimizer(stage, "float32"))
        out[mode] = sums.multi_input_sums(step, iterator)  # the new step's first call
    print(json.dumps(out))
    """
)


def test_train_step_sums_at_most_two_inputs_under_deterministic():
    """The trainer's step (pairwise gradient sums) after Grappler: no AddN of more than two
    inputs with the arithmetic optimizer off; with it on, Grappler merges chains into several
    (the check can fail)."""
    p = _python(_TRAIN_STEP_SUMS)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    results = json.loads(out.strip().splitlines()[-1])
    assert results["deterministic"] == []
    assert len(results["default"]) > 0
    assert all(n > 2 for _, n in results["default"])
