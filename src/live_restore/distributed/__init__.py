"""Restoring archives beyond one process: blockwise on a Dask cluster (the ``dask`` extra)."""
