"""The orchestrator: composes spec checking, the DAG executor, Dask and the event bus."""

from workbench.orchestrator.orchestrator import DistributedOrchestrator

__all__ = ["DistributedOrchestrator"]
