"""The person detector's face stage and ranking (`keras_pose3d.inference.detect`).

- Face -> person box and the ranking of faces and HOG windows: hand-computed cases.
- The real MTCNN: finds no face on the synthetic walker (so the walker tests run HOG's path),
  finds the annotated people's faces on the real MPII samples (realdata), and a missing `mtcnn`
  package gets an error that says what to install.
"""

import builtins
import json

import numpy as np
import pytest

from keras_pose3d.inference import detect
from keras_pose3d.inference.detect import DetectorConfig, PersonDetector, rank_people
from tests import walker
from tests.conftest import REALDATA

MPII = REALDATA / "mmpose_samples" / "mpii"


def test_face_to_person_box_by_hand():
    # Face 40 x 50 px: head top 0.2 x 50 = 10 px above it (y 190), person 9 x 50 = 450 px tall
    # (centre y 190 + 225 = 415), box side 1.2 x 450 = 540 centred on (120, 415).
    np.testing.assert_allclose(
        detect.face_to_person_box(np.array([100.0, 200.0, 140.0, 250.0]), 9.0, 0.2),
        [-150.0, 145.0, 390.0, 685.0],
    )


def test_square_around_by_hand():
    np.testing.assert_allclose(
        detect.square_around([0.0, 0.0, 10.0, 10.0], np.array([5.0, -10.0, 20.0, 5.0])),
        [0.0, -10.0, 20.0, 10.0],  # union x 0..20, y -10..10: already square
    )
    np.testing.assert_allclose(
        detect.square_around([0.0, 0.0, 10.0, 30.0], np.array([0.0, 0.0, 10.0, 10.0])),
        [-10.0, 0.0, 20.0, 30.0],  # 10 x 30 -> 30 x 30 about x = 5
    )


def test_rank_people_by_hand():
    """Face+body first, then faces alone, then bodies alone; the largest first in each."""
    windows = np.array(
        [
            [0.0, 0.0, 100.0, 200.0],  # 0: holds face 0 in its upper half
            [300.0, 0.0, 350.0, 100.0],  # 1: face 1 is in its lower half: not its head
            [500.0, 0.0, 600.0, 200.0],  # 2: no face
        ]
    )
    faces = np.array(
        [
            [45.0, 10.0, 55.0, 20.0],  # centre (50, 15)
            [320.0, 70.0, 330.0, 80.0],  # centre (325, 75): window 1's upper half ends at 50
            [700.0, 700.0, 720.0, 725.0],  # nowhere near a window
        ]
    )
    people = rank_people(windows, [1.0, 2.0, 0.5], faces, [0.9, 0.8, 0.95], DetectorConfig())
    assert [p.kind for p in people] == ["face+body", "face", "face", "body", "body"]
    # Window 0's person box: side 1.2 x 0.75 x 200 = 180 about (50, 100) -> [-40, 10, 140, 190];
    # face 0's: top 10 - 2 = 8, 90 tall, side 108 about (50, 53) -> [-4, -1, 104, 107]; the
    # square around both: x -40..140, y -1..190 -> side 191 about (50, 94.5).
    np.testing.assert_allclose(people[0].box, [-45.5, -1.0, 145.5, 190.0])
    assert people[0].window == (0.0, 0.0, 100.0, 200.0) and people[0].score == 0.9
    # Faces alone, larger first: face 2 (25 px), then face 1 (10 px), windows = the face boxes.
    assert [p.window for p in people[1:3]] == [tuple(faces[2]), tuple(faces[1])]
    # Face 1's person box: top 70 - 2 = 68, 90 tall, side 108 about (325, 113).
    np.testing.assert_allclose(people[2].box, [271.0, 59.0, 379.0, 167.0])
    # Bodies alone, taller window first, scores = SVM margins.
    assert [(p.window, p.score) for p in people[3:]] == [
        (tuple(windows[2]), 0.5),
        (tuple(windows[1]), 2.0),
    ]
    # A face takes the tallest window holding it; a second face in it stays alone.
    nested = np.array([[0.0, 0.0, 100.0, 200.0], [20.0, 0.0, 80.0, 120.0]])
    two = np.array([[45.0, 10.0, 55.0, 20.0], [40.0, 30.0, 50.0, 40.0]])
    people = rank_people(nested, [1.0, 1.0], two, [0.9, 0.9], DetectorConfig())
    assert [(p.kind, p.window) for p in people] == [
        ("face+body", tuple(nested[0])),  # face 0 (taller face first) takes the 200 px window
        ("face+body", tuple(nested[1])),
    ]
    assert rank_people(np.zeros((0, 4)), [], np.zeros((0, 4)), [], DetectorConfig()) == []


def test_no_face_on_the_walker():
    """MTCNN fires on nothing in the generated walker frames (a drawn head has no face) nor a
    black frame: the detector's output there is HOG's alone."""
    truth = walker.walkers(30, 640, 360)
    bg = walker.background(640, 360)
    with_faces, hog = PersonDetector(), PersonDetector(DetectorConfig(faces=False))
    frames = [walker.render_frame(truth, t, bg) for t in (0, 15, 29)]
    frames.append(np.zeros((360, 640, 3), np.uint8))
    for image in frames:
        found = with_faces(image)
        assert found == hog(image)
        assert all(d.kind == "body" for d in found)


@pytest.mark.realdata
def test_mpii_faces_are_the_annotated_heads():
    """On the five MPII samples MTCNN (at 640 px) finds the annotated person's face in 4: a face
    box whose centre lies within the head (head-top to upper-neck joints, +-1 head length
    sideways); the fifth, 051423444, is a profile 15 px wide there, under MTCNN's 20 px."""
    annotations = MPII / "test_mpii.json"
    if not annotations.is_file():
        pytest.skip(f"real MPII samples absent ({annotations})")
    import cv2

    detector = PersonDetector()
    found = {}
    for person in json.loads(annotations.read_text()):
        image = cv2.imread(str(MPII / person["image"]))
        joints = np.array(person["joints"])  # MPII order: 8 upper neck, 9 head top
        neck, top = joints[8], joints[9]
        head = np.linalg.norm(top - neck)
        lo = np.minimum(neck, top) - [head, 0.0]
        hi = np.maximum(neck, top) + [head, 0.0]
        boxes, _ = detector._faces(image)
        centres = 0.5 * (boxes[:, :2] + boxes[:, 2:])  # (F, 2)
        found[person["image"]] = bool(np.any(np.all((centres >= lo) & (centres <= hi), axis=1)))
    assert found == {
        "005808361.jpg": True,
        "052475643.jpg": True,
        "051423444.jpg": False,
        "004645041.jpg": True,
        "060754485.jpg": True,
    }


def test_missing_mtcnn_names_the_package(monkeypatch):
    real_import = builtins.__import__

    def no_mtcnn(name, *args, **kwargs):
        if name == "mtcnn":
            raise ImportError("No module named 'mtcnn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mtcnn)
    with pytest.raises(detect.DetectorUnavailableError, match=r"pip install mtcnn==1\.0\.0"):
        PersonDetector()
    # HOG alone needs no mtcnn: it still finds nobody on a black frame, without error.
    assert PersonDetector(DetectorConfig(faces=False))(np.zeros((360, 640, 3), np.uint8)) == []
