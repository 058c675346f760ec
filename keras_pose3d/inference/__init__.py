"""3D pose on a video or an image folder, behind `python -m keras_pose3d.infer`.

`runner` runs it end to end (`run(InferConfig(...))`); the frames come from `sources`, people
from `detect` and `tracking`, poses from `frame_predictor` (SAP-Net's serving graph on JPEG
bytes and boxes); `refine` (TP-Net), `fitting` (known bone lengths), `bvh` and `render` make
the outputs; `boxes_file` reads and writes boxes.json.
"""
