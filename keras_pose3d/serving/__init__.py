"""Serving: SavedModel export, signatures, ONNX export and TF-Serving clients.

`export` (TF-Serving's versioned layout, models.config, a run's export), `signatures` (the
graphs and their documented inputs/outputs), `onnx_export` (tf2onnx), `client` (REST and gRPC).
Modules are imported explicitly; nothing heavy is imported here.
"""
