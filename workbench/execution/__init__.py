"""Execution: the executor seam (Dask) and the DAG executor that drives the state machine."""
