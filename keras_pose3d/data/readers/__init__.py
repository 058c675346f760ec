"""Pure-Python readers of the raw MPII, Human3.6M and MPI-INF-3DHP files (no Beam needed).

Each module turns one dataset's on-disk formats into NumPy arrays with 0-based pixel
coordinates, millimetres and MPII-16 joint order, and raises errors that name the file, the
key and what was expected. The Beam jobs in `pipelines/` are thin layers over these.
"""
