"""Protocol tables (H36M, MPI-INF-3DHP, MPII, structural validity) and the paper's analyses.

Modules: `tables` (Markdown/CSV/JSON writers), `h36m`, `mpi_inf_3dhp`, `mpii`, `structural`,
`loss_surface` (Fig. 4), `sensitivity` (Fig. 5). Entry point: `keras_pose3d.evaluate`.
"""
