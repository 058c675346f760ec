"""Protocol tables (H36M, MPI-INF-3DHP, MPII, structural validity) and the paper's analyses.

Modules: `runner` (evaluate a run or a stored predictions file), `records` (record meta and the
record id), `predictors` (SavedModel predictor, evaluation's prediction pass; the pass itself is
`models.prediction`), `predictions_file` (stored predictions formats), `crop` (network-input
pixels -> original pixels), `h36m`, `mpi_inf_3dhp`, `mpii`, `synthetic`, `structural`
(per-dataset tables), `tables` (Markdown/CSV/JSON writers), `loss_surface` (Fig. 4),
`sensitivity` (Fig. 5). Entry point: `keras_pose3d.evaluate`.
"""
