"""Which device a GPU task's XGBoost fit gets, from what the worker's process can see."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from workbench.tasks import devices
from workbench.tasks.devices import DeviceKind, xgboost_device


@pytest.fixture(autouse=True)
def fresh_probe() -> Any:
    devices.visible_cuda_devices.cache_clear()
    yield
    devices.visible_cuda_devices.cache_clear()


def fake_nvidia_smi(monkeypatch: pytest.MonkeyPatch, listing: str) -> None:
    monkeypatch.setattr(devices.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def run(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout=listing, stderr="")

    monkeypatch.setattr(devices.subprocess, "run", run)


TWO_GPUS = "GPU 0: NVIDIA H100 (UUID: GPU-1)\nGPU 1: NVIDIA H100 (UUID: GPU-2)\n"


def test_no_gpu_asked_means_cpu() -> None:
    assert xgboost_device(0).kind is DeviceKind.CPU


def test_without_a_driver_a_gpu_task_runs_on_cpu_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices.shutil, "which", lambda name: None)
    device = xgboost_device(1)
    assert device.kind is DeviceKind.CPU
    assert "no CUDA device is visible" in device.why or "without CUDA" in device.why


def test_a_visible_device_gives_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(monkeypatch, TWO_GPUS)
    monkeypatch.setattr("xgboost.build_info", lambda: {"USE_CUDA": True})
    device = xgboost_device(1)
    assert device.kind is DeviceKind.CUDA and "2 device(s)" in device.why


def test_the_gpus_are_those_nvidia_smi_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(monkeypatch, TWO_GPUS)
    assert devices.visible_gpu_ids() == ["0", "1"]
    assert devices.visible_cuda_devices() == 2


@pytest.mark.parametrize(
    ("visible", "ids"), [("", []), ("-1", []), ("1", ["1"]), ("0,1,2", ["0", "1"])]
)
def test_cuda_visible_devices_narrows_what_is_seen(
    monkeypatch: pytest.MonkeyPatch, visible: str, ids: list[str]
) -> None:
    fake_nvidia_smi(monkeypatch, TWO_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert devices.visible_gpu_ids() == ids


def test_an_xgboost_without_cuda_runs_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvidia_smi(monkeypatch, TWO_GPUS)
    monkeypatch.setattr("xgboost.build_info", lambda: {"USE_CUDA": False})
    device = xgboost_device(1)
    assert device.kind is DeviceKind.CPU and "built without CUDA" in device.why
