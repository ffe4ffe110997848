"""Where a GPU task really runs, said out loud.

A task that asks for `gpu: 1` lands on a worker offering the GPU resource; whether that worker
has a CUDA device is another matter (a simulated GPU worker of the dev cluster offers the
resource on a CPU). XGBoost is given `device="cuda"` only when a device is visible to the
worker's process, and the task's metrics and summary say which it used, never silently.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum


class DeviceKind(StrEnum):
    CUDA = "cuda"
    CPU = "cpu"


@dataclass(frozen=True)
class Device:
    kind: DeviceKind
    why: str  # one line for the task's summary


def visible_gpu_ids() -> list[str]:
    """Ids of the CUDA devices this process may use: those `nvidia-smi -L` lists, narrowed by
    CUDA_VISIBLE_DEVICES where it is set; none without the driver's tool."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return []
    try:
        listed = subprocess.run(
            [executable, "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = [str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return found
    ids = [part.strip() for part in visible.split(",") if part.strip()]
    return [] if ids[:1] == ["-1"] else ids[: len(found)]


@functools.cache
def visible_cuda_devices() -> int:
    """How many CUDA devices this process can use; asked once per process."""
    return len(visible_gpu_ids())


def xgboost_device(gpus_requested: int) -> Device:
    """The device an XGBoost fit should use for a task asking for `gpus_requested` GPUs."""
    if gpus_requested <= 0:
        return Device(DeviceKind.CPU, "the task asks for no GPU")
    import xgboost

    if not xgboost.build_info().get("USE_CUDA"):
        return Device(DeviceKind.CPU, "ran on CPU: this worker's XGBoost is built without CUDA")
    devices = visible_cuda_devices()
    if devices == 0:
        return Device(
            DeviceKind.CPU,
            "ran on CPU: the worker offers the GPU resource but no CUDA device is visible "
            "(a simulated GPU worker, or CUDA_VISIBLE_DEVICES hides it)",
        )
    return Device(DeviceKind.CUDA, f"ran on CUDA ({devices} device(s) visible to the worker)")
