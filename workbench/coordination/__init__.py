"""Cluster mode's shared state: executions, instances, leadership and ownership."""
