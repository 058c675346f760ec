"""Export: TF-Serving layout, signatures (saved_model_cli), parity with Keras, ONNX, errors."""

import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from keras_pose3d.data import pose_codec
from keras_pose3d.export import main as export_main
from keras_pose3d.models import loading
from keras_pose3d.models.sap_net import SAPNet
from keras_pose3d.models.tp_net import TPNet
from keras_pose3d.serving import export, signatures

# saved_model_cli through its module with this interpreter: the console script lives in whatever
# environment TensorFlow was installed into, which need not be on PATH.
SAVED_MODEL_CLI = [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
WINDOW = 4


def tiny_sap_net() -> SAPNet:
    model = SAPNet(
        num_stacks=1,
        num_features=32,
        hourglass_depth=2,
        depth_blocks=2,
        input_size=64,
        heatmap_size=16,
        decode_threshold=0.5,  # what build_model gives (config default): ONNX must carry it
    )
    model(np.zeros((1, 64, 64, 3), np.float32))
    return model


def bilinear_crop(image, box, size):
    """NumPy reference of the serving crop: samples at crop pixel centres, float64 bilinear;
    like tf.image.crop_and_resize, a sample outside [0, H-1] x [0, W-1] is black."""
    step = (box[2] - box[0]) / size
    u = box[0] + (np.arange(size) + 0.5) * step
    v = box[1] + (np.arange(size) + 0.5) * step
    h, w = image.shape[:2]
    x0 = np.clip(np.floor(u).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(v).astype(int), 0, h - 2)
    fx, fy = (u - x0)[None, :, None], (v - y0)[:, None, None]
    im = image.astype(np.float64)
    top = im[y0][:, x0] * (1 - fx) + im[y0][:, x0 + 1] * fx
    bottom = im[y0 + 1][:, x0] * (1 - fx) + im[y0 + 1][:, x0 + 1] * fx
    out = top * (1 - fy) + bottom * fy
    outside = (v[:, None] < 0) | (v[:, None] > h - 1) | (u[None, :] < 0) | (u[None, :] > w - 1)
    out[outside] = 0.0
    return out / 255.0


def jpeg_bytes(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


_EXPORTED = {}


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """One run directory (float32 SAP-Net, mixed_bfloat16 TP-Net) exported once via the CLI.

    test_client and test_infer import this fixture; an imported fixture is a separate fixture
    per module, so the result is cached here to export only once per session.
    """
    if not _EXPORTED:
        _EXPORTED.update(_export(tmp_path_factory))
    return _EXPORTED


def _export(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    out = tmp_path_factory.mktemp("saved_models")
    sap = tiny_sap_net()
    sap.save(run / loading.SAP_NET_FILE)
    tp = TPNet(window=WINDOW, hidden=32, dtype="mixed_bfloat16")
    tp(np.zeros((1, WINDOW, 16, 3), np.float32))
    tp.save(run / loading.TP_NET_FILE)
    # sap_net's graphs are a subset of pipeline's: exporting both would only double the time.
    assert (
        export_main(["--run", str(run), "--out", str(out), "--onnx", "--models", "tp_net,pipeline"])
        == 0
    )
    return {"run": run, "out": out, "sap": sap, "tp": tp}


_LOADED = {}


def _load(exported, name):
    """Each SavedModel is loaded once per session (loading re-creates its graphs: slow)."""
    path = str(exported["out"] / name / "1")
    if path not in _LOADED:
        _LOADED[path] = tf.saved_model.load(path)
    return _LOADED[path]


@pytest.mark.slow
def test_layout_versions_and_models_config(exported, tmp_path):
    out = exported["out"]
    for name in ("tp_net", "pipeline"):
        assert (out / name / "1" / "saved_model.pb").is_file(), name
    assert not (out / "sap_net").exists()
    config = (out / "models.config").read_text()
    names = re.findall(r'name: "(\w+)"', config)
    paths = re.findall(r'base_path: "([^"]+)"', config)
    assert names == ["tp_net", "pipeline"]
    assert paths == ["/models/tp_net", "/models/pipeline"]
    assert config.count('model_platform: "tensorflow"') == 2
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "7").mkdir()
    (tmp_path / "m" / "notes").mkdir()
    assert export.next_version(tmp_path / "m") == 8
    assert export.next_version(tmp_path / "none") == 1


def _cli_signatures(path):
    text = subprocess.run(
        [*SAVED_MODEL_CLI, "show", "--all", "--dir", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sigs = {}
    for block in re.split(r"\nsignature_def\['", text)[1:]:
        name = block.split("'")[0]
        inputs_part, outputs_part = block.split(
            "The given SavedModel SignatureDef contains the following output(s):"
        )
        parse = lambda part: {
            m[0]: (m[1], tuple(int(d) for d in m[2].split(",") if d.strip()))
            for m in re.findall(
                r"\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: \(([^)]*)\)", part
            )
        }
        sigs[name] = (parse(inputs_part), parse(outputs_part.split("Method name")[0]))
    return sigs


@pytest.mark.slow
def test_saved_model_cli_lists_documented_signatures(exported):
    """saved_model_cli on the pipeline (a superset of sap_net's); TP-Net via its signature."""
    cli_dtype = {"string": "DT_STRING", "float32": "DT_FLOAT"}
    sigs = _cli_signatures(exported["out"] / "pipeline" / "1")
    assert set(sigs) == set(signatures.PIPELINE_SIGNATURES) | {"__saved_model_init_op"}
    for sig in signatures.PIPELINE_SIGNATURES:
        expected = signatures.signature_table(sig, input_size=64, window=WINDOW)
        got_inputs, got_outputs = sigs[sig]
        assert {
            k: (cli_dtype[d], tuple(-1 if s is None else s for s in shape))
            for k, (d, shape) in expected.items()
        } == got_inputs, sig
        assert set(got_outputs) == set(signatures.SIGNATURES[sig][1]), sig
        assert all(d == "DT_FLOAT" for d, _ in got_outputs.values()), sig
    tp = _load(exported, "tp_net")
    assert set(tp.signatures) == set(signatures.TP_NET_SIGNATURES)
    for sig in signatures.TP_NET_SIGNATURES:
        spec = tp.signatures[sig].structured_input_signature[1]
        assert {k: (v.dtype, tuple(v.shape)) for k, v in spec.items()} == {
            "poses": (tf.float32, (None, WINDOW, 16, 3))
        }
        assert set(tp.signatures[sig].structured_outputs) == {"pose_3d_mm"}


@pytest.mark.slow
def test_reloaded_sap_net_matches_keras(exported):
    loaded = _load(exported, "pipeline")
    images = np.random.default_rng(0).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    ref = exported["sap"](images)
    got = loaded.signatures["predict_raw"](images=tf.constant(images))
    for key in ("pose_2d", "depth", "pose_3d", "heatmaps"):  # the folded network: rtol
        np.testing.assert_allclose(
            got[key].numpy(), np.asarray(ref[key]), rtol=1e-5, atol=1e-5, err_msg=key
        )


@pytest.mark.slow
def test_predict_image_decodes_to_mm_like_pose_codec(exported):
    loaded = _load(exported, "pipeline")
    images = np.random.default_rng(1).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    focal = np.array([80.0, 0.0], np.float32)  # 0 -> default max(H, W) = 64
    root = np.array([4000.0, 0.0], np.float32)  # 0 -> default 5000 mm
    got = loaded.signatures["predict_image"](images=images, focal_length=focal, root_depth_mm=root)
    pose = np.asarray(exported["sap"](images)["pose_3d"])
    intr = np.array([[80.0, 80.0, 31.5, 31.5], [64.0, 64.0, 31.5, 31.5]])
    ref = pose_codec.decode_pose_3d(pose, intr, np.array([4000.0, 5000.0]), 64)
    np.testing.assert_allclose(got["joints_3d_mm"].numpy(), ref, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(
        got["joints_3d_root_relative_mm"].numpy(), ref - ref[:, 6:7], rtol=1e-5, atol=1e-2
    )
    np.testing.assert_allclose(got["joints_2d_px"].numpy(), pose[..., :2] * 32 + 32, atol=1e-4)
    heat = np.asarray(exported["sap"](images)["heatmaps"])[:, -1]
    # The graph runs the BatchNorm-folded network: float32 roundings in another order, ~1e-6
    # relative (tests/test_export_folding.py holds the folding's own bound).
    np.testing.assert_allclose(
        got["confidence"].numpy(), heat.max(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )


def test_crop_resize_matches_numpy_bilinear_with_padding():
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 255, (30, 40, 3)).astype(np.float32)
    box = np.array([30.0, -6.0, 50.0, 14.0], np.float32)  # leaves the image right and top
    crop = signatures.crop_resize(tf.constant(image), tf.constant(box), 8).numpy()
    ref = bilinear_crop(image, box, 8)
    np.testing.assert_allclose(crop, ref, atol=1e-5)
    # Hand-counted: samples at u = 31.25 + 2.5 i (inside for i <= 3, W - 1 = 39) and
    # v = -4.75 + 2.5 i (inside for i >= 2): 4 x 6 samples on the image, the rest black.
    assert np.sum(np.all(crop == 0, axis=-1)) == 64 - 24
    np.testing.assert_allclose(
        crop[2, 0],
        (image[0, 31] * 0.75 + image[0, 32] * 0.25) * 0.75 / 255
        + (image[1, 31] * 0.75 + image[1, 32] * 0.25) * 0.25 / 255,
        atol=1e-5,
    )


def test_decode_outputs_round_trips_a_projected_pose():
    """A camera-frame pose projected into a boxed crop decodes back to mm and image pixels."""
    rng = np.random.default_rng(3)
    pose_mm = rng.normal(0, 200, (1, 16, 3)) + [100.0, -50.0, 0.0]
    pose_mm[..., 2] += 4500.0
    h, w, f, s = 480.0, 640.0, 700.0, 64
    box = np.array([[200.0, 100.0, 360.0, 260.0]])  # square, side 160
    uv = f * pose_mm[..., :2] / pose_mm[..., 2:] + [(w - 1) / 2, (h - 1) / 2]  # image px
    scale = s / 160.0
    crop_intr = np.array(
        [
            [
                f * scale,
                f * scale,
                ((w - 1) / 2 - 200) * scale - 0.5,
                ((h - 1) / 2 - 100) * scale - 0.5,
            ]
        ]
    )
    crop_uv = (uv - box[:, None, :2]) * scale - 0.5
    pose_norm = pose_codec.encode_pose_3d(pose_mm, crop_intr, s, joints_2d_px=crop_uv)
    outputs = {
        "pose_3d": tf.constant(pose_norm, tf.float32),
        "pose_2d": tf.constant(pose_norm[..., :2], tf.float32),
        "heatmaps": tf.zeros((1, 1, 4, 4, 16)),
    }
    got = signatures.decode_outputs(
        outputs,
        tf.constant(box, tf.float32),
        tf.constant([[h, w]], tf.float32),
        tf.constant([f], tf.float32),
        tf.constant([pose_mm[0, 6, 2]], tf.float32),
        s,
    )
    np.testing.assert_allclose(got["joints_3d_mm"].numpy(), pose_mm, rtol=1e-4, atol=0.5)
    np.testing.assert_allclose(got["joints_2d_px"].numpy(), uv, atol=1e-2)


@pytest.mark.slow
def test_predict_jpeg_equals_predict_image_on_the_same_crop(exported):
    loaded = _load(exported, "pipeline")
    rng = np.random.default_rng(4)
    image = cv2.GaussianBlur(rng.uniform(0, 255, (48, 80, 3)), (0, 0), 3).astype(np.uint8)
    data = jpeg_bytes(image)
    decoded = tf.io.decode_jpeg(data, channels=3).numpy()
    # Default box: the centred square of side 80 -> 64 px, edges (-0.5, -16.5)..(79.5, 63.5).
    crop = bilinear_crop(decoded, np.array([-0.5, -16.5, 79.5, 63.5]), 64)[None]
    jpeg_out = loaded.signatures["serving_default"](images=tf.constant([data]))
    image_out = loaded.signatures["predict_raw"](images=tf.constant(crop, tf.float32))
    pose2d = image_out["pose_2d"].numpy()
    np.testing.assert_allclose(
        jpeg_out["joints_2d_px"].numpy(),
        (pose2d * 32 + 32 + 0.5) * 80 / 64 + [-0.5, -16.5],
        atol=0.05,
    )


@pytest.mark.slow
def test_online_pipeline_refines_with_tp_net(exported):
    loaded = _load(exported, "pipeline")
    data = jpeg_bytes(np.full((40, 40, 3), 128, np.uint8))
    history = np.random.default_rng(5).normal(0, 100, (1, WINDOW - 1, 16, 3)).astype(np.float32)
    out = loaded.signatures["predict_jpeg_online"](
        images=tf.constant([data]), history=tf.constant(history)
    )
    window = np.concatenate([history, out["joints_3d_root_relative_mm"].numpy()[:, None]], 1)
    ref = loading.load_float32(exported["run"] / loading.TP_NET_FILE)(window)
    # Outputs reach ~1e4 mm (untrained, unseeded weights): float32 summation order in the graph
    # vs eagerly moves them by a few ulp (~1e-3 mm each), hence the relative term.
    np.testing.assert_allclose(
        out["joints_3d_refined_mm"].numpy(), np.asarray(ref), rtol=1e-5, atol=1e-3
    )


@pytest.mark.slow
def test_tp_net_export_is_float32_and_matches_keras(exported):
    mixed = exported["tp"]
    fp32 = loading.load_float32(exported["run"] / loading.TP_NET_FILE)
    assert {layer.dtype_policy.name for layer in fp32._flatten_layers()} == {"float32"}
    for a, b in zip(mixed.get_weights(), fp32.get_weights()):
        np.testing.assert_array_equal(np.asarray(a), b)
    loaded = _load(exported, "tp_net")
    poses = np.random.default_rng(6).normal(0, 300, (3, WINDOW, 16, 3)).astype(np.float32)
    got = loaded.signatures["refine"](poses=tf.constant(poses))["pose_3d_mm"].numpy()
    np.testing.assert_allclose(got, np.asarray(fp32(poses)), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got, np.asarray(mixed(poses)), atol=0.05 * np.abs(got).max())


@pytest.mark.slow
def test_corrupt_jpeg_error_names_images(exported):
    loaded = _load(exported, "pipeline")
    good = jpeg_bytes(np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`images` element.*\[1\].*JPEG"):
        loaded.signatures["serving_default"](images=tf.constant([good, b"not a jpeg at all"]))


@pytest.mark.slow
def test_wrong_window_length_error_names_poses_and_n(exported):
    loaded = _load(exported, "tp_net")
    with pytest.raises(
        (tf.errors.InvalidArgumentError, ValueError, TypeError), match=rf"`poses`.*N={WINDOW}"
    ):
        loaded.signatures["refine"](poses=tf.zeros((1, WINDOW + 1, 16, 3)))


@pytest.mark.slow
def test_onnx_matches_tensorflow(exported):
    ort = pytest.importorskip("onnxruntime")
    out = exported["out"] / "onnx"
    images = np.random.default_rng(7).uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    session = ort.InferenceSession(str(out / "sap_net.onnx"))
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"images": images})))
    ref = _load(exported, "pipeline").signatures["predict_raw"](images=tf.constant(images))
    for key in ("pose_2d", "depth", "pose_3d"):
        np.testing.assert_allclose(got[key], ref[key].numpy(), atol=1e-4, err_msg=key)
    np.testing.assert_allclose(
        got["confidence"], ref["heatmaps"].numpy()[:, -1].max((1, 2)), atol=1e-4
    )
    session = ort.InferenceSession(str(out / "tp_net.onnx"))
    poses = np.random.default_rng(8).normal(0, 300, (2, WINDOW, 16, 3)).astype(np.float32)
    ref = _load(exported, "tp_net").signatures["refine"](poses=tf.constant(poses))
    np.testing.assert_allclose(
        session.run(None, {"poses": poses})[0], ref["pose_3d_mm"].numpy(), atol=1e-3
    )


def test_missing_run_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="sap_net.keras"):
        export.export_run(tmp_path, tmp_path / "out")


def test_cli_bad_run_prints_error_and_exits_2(tmp_path, capsys):
    assert export_main(["--run", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "nope") in err


def _tiny_tp(path, mode="online", window=3):
    tp = TPNet(window=window, mode=mode, hidden=8)
    tp(np.zeros((1, window, 16, 3), np.float32))
    tp.save(path)
    return tp


def test_tp_net_flag_missing_tp_net_and_models_config_keeps_other_models(tmp_path):
    run, elsewhere, out = tmp_path / "run", tmp_path / "temporal", tmp_path / "out"
    run.mkdir()
    elsewhere.mkdir()
    _tiny_tp(elsewhere / loading.TP_NET_FILE, mode="semi_online", window=4)
    # A model exported earlier (its config entry must survive a partial export).
    (out / "pipeline" / "3").mkdir(parents=True)
    (out / "pipeline" / "3" / "saved_model.pb").write_bytes(b"")
    (out / "onnx").mkdir()  # not a model folder
    paths = export.export_run(run, out, models=["tp_net"], tp_net=elsewhere / loading.TP_NET_FILE)
    assert paths["tp_net"] == out / "tp_net" / "1"
    config = (out / "models.config").read_text()
    assert re.findall(r'name: "(\w+)"', config) == ["tp_net", "pipeline"]
    # The SavedModel carries the TP-Net's mode and window.
    meta = signatures.read_metadata(tf.saved_model.load(str(paths["tp_net"])))
    assert meta == {"mode": "semi_online", "window": 4, "frame_rate": None}
    # Explicitly requested but missing: an error naming tp_net.keras; models.config untouched.
    for models in (["tp_net"], ["pipeline"]):
        with pytest.raises(FileNotFoundError, match=r"run/tp_net\.keras"):
            export.export_run(run, out, models=models)
    with pytest.raises(FileNotFoundError, match=r"missing\.keras"):
        export.export_run(run, out, models=["tp_net"], tp_net=tmp_path / "missing.keras")
    assert (out / "models.config").read_text() == config


def test_default_export_without_tp_net_says_sap_net_only(tmp_path, monkeypatch, capsys):
    run, out = tmp_path / "run", tmp_path / "out"
    run.mkdir()
    tiny_sap_net().save(run / loading.SAP_NET_FILE)

    def fake_export(sap, base, name="sap_net", tp_net=None, **options):  # save: tested above
        path = pathlib.Path(base) / name / "1"
        path.mkdir(parents=True)
        (path / "saved_model.pb").write_bytes(b"")
        return path

    monkeypatch.setattr(export, "export_sap_net", fake_export)
    assert export_main(["--run", str(run), "--out", str(out)]) == 0
    assert "no tp_net.keras: exporting sap_net only" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["models.config", "sap_net"]
    assert re.findall(r'name: "(\w+)"', (out / "models.config").read_text()) == ["sap_net"]
