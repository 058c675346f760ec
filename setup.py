"""keras_pose3d: Dabral et al. (ECCV 2018) as a TensorFlow/Keras training stack."""

import pathlib

from setuptools import find_packages, setup

# The one stack verified together (Python 3.11). TensorFlow itself comes from the `cpu` or `gpu`
# extra. No tensorflow-addons: it is end-of-life and does not import under Keras 3.
INSTALL_REQUIRES = [
    "keras==3.15.1",
    "apache-beam[tfrecord]==2.77.0",
    "tf2onnx==1.17.0",
    "onnx",
    "onnxruntime",
    # The contrib build: OpenCV 5 moved the HOG person detector (`detect`, with MTCNN's faces
    # below; README "Inference") out of the main wheel. It is
    # a superset of opencv-python-headless; never install both (they share the cv2 package).
    "opencv-contrib-python-headless>=4.8",
    # The face detector (`detect`): MTCNN in Keras/TensorFlow, MIT, its weights in the wheel
    # (1.9 MB; brings lz4 and joblib). Pinned: `detect` calls its API.
    "mtcnn==1.0.0",
    "numpy",
    "scipy",
    "h5py",
    "cdflib",
    "pyyaml",
    "matplotlib",
    "tensorboard",  # tensorflow-cpu does not bring it; tf.summary needs it
]

setup(
    name="keras_pose3d",
    version="0.1.0",
    description="Structure- and motion-aware 3D human pose (Dabral et al. 2018) in TF/Keras",
    long_description=pathlib.Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_pose3d", "keras_pose3d.*", "pipelines", "pipelines.*"]),
    install_requires=INSTALL_REQUIRES,
    # TensorFlow comes through exactly one of these, so CPU and GPU installs never mix wheels.
    extras_require={
        "cpu": ["tensorflow-cpu==2.21.0"],
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
        # The gRPC client's protos: tensorflow-serving-api declares a dependency on the full
        # `tensorflow` wheel, which would replace tensorflow-cpu, so install it with
        # `pip install --no-deps tensorflow-serving-api==2.19.0` (its protos work on TF 2.21).
        # ruff pinned: its default rule set changes between releases, and CI runs `ruff check`.
        "dev": ["pytest", "pytest-timeout", "hdf5storage", "ruff==0.17.6"],
    },
    entry_points={
        "console_scripts": [
            "kp3d-train=keras_pose3d.train:main",
            "kp3d-evaluate=keras_pose3d.evaluate:main",
            "kp3d-export=keras_pose3d.export:main",
            "kp3d-infer=keras_pose3d.infer:main",
        ]
    },
)
