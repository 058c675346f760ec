"""Make sub-layers held in Python lists visible to `tf.train.Checkpoint`."""

from __future__ import annotations

from collections.abc import Iterable

import keras


def track_listed_layers(owner: keras.layers.Layer, prefix: str, layers: Iterable) -> None:
    """Also hold each of `layers` as a private attribute `_{prefix}_{i}` of `owner`.

    Keras 3 on TensorFlow wraps a list attribute in its own `TrackedList`, which TensorFlow's
    object graph does not follow: a layer held only in a list is missing from every
    `tf.train.Checkpoint` (the trainer's stage checkpoints and resume), and a restore leaves it
    at its fresh initialisation without an error (keras-team/keras#18398 and #19425 describe
    the two tracking systems). A direct attribute is tracked by both. The `.keras` format is
    unchanged: it visits private attributes last and saves each layer once, under its list.

    Args:
        owner: the layer whose attributes hold the lists.
        prefix: attribute name stem, e.g. "upper" gives `_upper_0`, `_upper_1`, ...
        layers: the list's layers in order.
    """
    for index, layer in enumerate(layers):
        setattr(owner, f"_{prefix}_{index}", layer)
