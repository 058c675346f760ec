"""Beam counters in the project's namespace, so a runner's monitoring page lists a job's counts
(frames read, records written, dead letters per stage) together under `keras_pose3d`."""

from __future__ import annotations

import apache_beam as beam

METRICS_NAMESPACE = "keras_pose3d"


def counter(name: str) -> beam.metrics.metricbase.Counter:
    """A Beam counter in the project's namespace (call inside DoFns)."""
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)
