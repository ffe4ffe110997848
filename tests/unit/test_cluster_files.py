"""The deployment files under clusters/: they parse, and what they configure is real.

No Docker, Kubernetes or Slurm here: the checks are structural (services, kinds, GPU
placement, pinned images) and every WORKBENCH_* name and profile key is a Settings field.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import py_compile
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from workbench.config import Settings, load_profile

ROOT = Path(__file__).resolve().parents[2]
CLUSTERS = ROOT / "clusters"
COMPOSE = CLUSTERS / "compose"
KUBERNETES = CLUSTERS / "kubernetes"
SLURM = CLUSTERS / "slurm"

ALL_YAML = sorted(CLUSTERS.rglob("*.yaml"))
# Profiles: the files directly under clusters/ and the profile files of each deployment.
PROFILES = sorted(CLUSTERS.glob("*.yaml")) + sorted(CLUSTERS.glob("*/profile*.yaml"))


def _load_all(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _settings_env_problems(names: list[str]) -> list[str]:
    """WORKBENCH_* names that are no Settings field."""
    fields = set(Settings.model_fields)
    return [
        name
        for name in names
        if name.startswith("WORKBENCH_") and name.removeprefix("WORKBENCH_").lower() not in fields
    ]


def _clear_workbench_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Profiles are checked as written: no WORKBENCH_* variable of this shell overrides them."""
    for name in [n for n in os.environ if n.startswith("WORKBENCH_")]:
        monkeypatch.delenv(name)


def _image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None."""
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all (a registry port is not a tag)
        return f"{image}: no tag"
    if tag == "latest":
        return f"{image}: 'latest' is not a version"
    return None


def _args_have(args: list[str] | str, flag: str, value: str) -> bool:
    """Whether `flag value` (or `flag=value`) is in a command, given as a list or a string."""
    words = args.split() if isinstance(args, str) else [str(a) for a in args]
    pairs = zip(words, [*words[1:], ""], strict=True)
    return any((a == flag and b == value) or a == f"{flag}={value}" for a, b in pairs)


# -- every file ---------------------------------------------------------------------------------


def test_the_deployments_exist() -> None:
    for folder in (COMPOSE, KUBERNETES, SLURM):
        assert (folder / "README.md").is_file(), folder
    assert (COMPOSE / "compose.yaml").is_file()
    assert (COMPOSE / "Dockerfile").is_file()
    assert (SLURM / "start_cluster.py").is_file()
    assert len(list(KUBERNETES.glob("*.yaml"))) >= 4


@pytest.mark.parametrize("path", ALL_YAML, ids=lambda p: str(p.relative_to(CLUSTERS)))
def test_every_yaml_file_parses(path: Path) -> None:
    docs = _load_all(path)
    assert docs or path.name == "local.yaml", f"{path} is empty"
    for doc in docs:
        assert isinstance(doc, dict), f"{path}: a document that is not a mapping"


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: str(p.relative_to(CLUSTERS)))
def test_profiles_load_with_known_settings_only(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_workbench_env(monkeypatch)
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    assert not set(values) - set(Settings.model_fields)
    settings = load_profile(path)  # raises ProfileError on unknown or invalid settings
    for key, value in values.items():
        assert getattr(settings, key) is not None, key
        assert str(getattr(settings, key)) == str(value), key


def test_the_dev_profile_is_a_cluster() -> None:
    settings = load_profile(CLUSTERS / "dev.yaml")
    assert settings.cluster_mode
    assert settings.scheduler_address
    assert not load_profile(CLUSTERS / "local.yaml").cluster_mode


# -- Docker Compose -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text(encoding="utf-8"))


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(c) for c in command]


def _env_names(service: dict[str, Any]) -> list[str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return [item.split("=", 1)[0] for item in env]
    return list(env)


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("redis", "kafka", "scheduler", "cpu-worker", "gpu-worker"):
        assert name in services, name
    orchestrators = [
        s for s in services.values() if _command(s)[:2] == ["workbench", "orchestrator"]
    ]
    assert len(orchestrators) == 2
    ids = [_command(s)[_command(s).index("--instance-id") + 1] for s in orchestrators]
    assert len(set(ids)) == 2, "two instances need two ids"
    assert services["cpu-worker"]["deploy"]["replicas"] >= 2


def test_compose_services_have_pinned_images_or_a_build(compose: dict[str, Any]) -> None:
    problems = []
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, f"{name}: no image or build"
        if "image" in service:
            problem = _image_problem(service["image"])
            if problem:
                problems.append(f"{name}: {problem}")
    assert not problems


def test_compose_builds_the_project_image(compose: dict[str, Any]) -> None:
    built = [s for s in compose["services"].values() if "build" in s]
    assert built
    for service in built:
        context = (COMPOSE / service["build"]["context"]).resolve()
        assert (context / "pyproject.toml").is_file(), "the build context is the repository"
        assert (context / service["build"]["dockerfile"]).resolve() == COMPOSE / "Dockerfile"


def test_compose_gpu_worker_reserves_a_gpu_and_offers_it_to_dask(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["gpu-worker"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and d.get("count") == 1 and "gpu" in d.get("capabilities", [])
        for d in devices
    )
    command = _command(gpu)
    assert command[:2] == ["dask", "worker"]
    assert _args_have(command, "--resources", "GPU=1")
    # and no CPU worker offers the GPU resource
    assert not _args_have(_command(compose["services"]["cpu-worker"]), "--resources", "GPU=1")


def test_compose_workbench_variables_are_settings(compose: dict[str, Any]) -> None:
    names = [n for s in compose["services"].values() for n in _env_names(s)]
    workbench_names = {n for n in names if n.startswith("WORKBENCH_")}
    for needed in ("SCHEDULER_ADDRESS", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS", "ARTIFACT_ROOT"):
        assert f"WORKBENCH_{needed}" in workbench_names, needed
    assert not _settings_env_problems(names)


def test_compose_orchestrators_reach_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for service in services.values():
        if _command(service)[:2] != ["workbench", "orchestrator"]:
            continue
        env = service["environment"]
        assert env["WORKBENCH_SCHEDULER_ADDRESS"] == "tcp://scheduler:8786"
        assert re.match(r"rediss?://[^@]*@?redis:6379/\d+$", env["WORKBENCH_REDIS_URL"])
        assert env["WORKBENCH_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "kafka"
        root = env["WORKBENCH_ARTIFACT_ROOT"]
        assert any(str(v).split(":")[1] == root for v in service["volumes"]), "not shared"
        assert {"redis", "scheduler"} <= set(service["depends_on"])
        profile = _command(service)[_command(service).index("--profile") + 1]
        assert any(str(v).split(":")[1] == profile for v in service["volumes"])
    for name in ("redis", "kafka", "scheduler"):
        assert "healthcheck" in services[name], name


def test_compose_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka"]["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "KAFKA_NODE_ID" in env
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert voters.startswith(f"{env['KAFKA_NODE_ID']}@")
    assert "CONTROLLER" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    assert "kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert not any("ZOOKEEPER" in k for k in env)


def test_dockerfile_installs_the_project() -> None:
    text = (COMPOSE / "Dockerfile").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if not line.strip().startswith("#")]
    assert any(re.match(r"ARG PYTHON_IMAGE=python:3\.1[1-9]", line) for line in lines)
    assert any(line.startswith("FROM ") for line in lines)
    assert any(re.match(r"RUN pip install .*\.$", line) for line in lines)
    assert "COPY pyproject.toml" in text
    for package in ("workbench", "tui"):  # setuptools finds both (pyproject.toml)
        assert f"COPY {package} " in text
    assert any(line.startswith("USER ") and "root" not in line for line in lines)


# -- Kubernetes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(KUBERNETES.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in _load_all(path)
    ]


def _of_kind(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def _pod_specs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec", {})
    kind = manifest["kind"]
    if kind == "DaskCluster":
        return [spec["scheduler"]["spec"], spec["worker"]["spec"]]
    if kind == "DaskWorkerGroup":
        return [spec["worker"]["spec"]]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return [spec["template"]["spec"]]
    return []


def _containers(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for m in manifests for pod in _pod_specs(m) for c in pod["containers"]]


def test_kubernetes_kinds(manifests: list[dict[str, Any]]) -> None:
    kinds = {m["kind"] for m in manifests}
    assert {"DaskCluster", "DaskWorkerGroup", "Deployment", "ConfigMap", "Secret"} <= kinds
    for manifest in manifests:
        assert manifest.get("apiVersion"), manifest["kind"]
        assert manifest["metadata"].get("name"), manifest["kind"]
    for kind in ("DaskCluster", "DaskWorkerGroup"):
        assert all(m["apiVersion"] == "kubernetes.dask.org/v1" for m in _of_kind(manifests, kind))
    services = {m["metadata"]["name"] for m in _of_kind(manifests, "Service")}
    assert {"redis", "kafka"} <= services


def test_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    # The example Secret holds placeholders: it is created by hand, never applied with the rest.
    assert listed == present - {"secret.example.yaml"}


def test_kubernetes_gpu_worker_group(manifests: list[dict[str, Any]]) -> None:
    (cluster,) = _of_kind(manifests, "DaskCluster")
    groups = _of_kind(manifests, "DaskWorkerGroup")
    gpu_groups = [
        g
        for g in groups
        if any(
            "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
            for c in g["spec"]["worker"]["spec"]["containers"]
        )
    ]
    assert gpu_groups, "no worker group requests nvidia.com/gpu"
    for group in gpu_groups:
        assert group["spec"]["cluster"] == cluster["metadata"]["name"]
        for container in group["spec"]["worker"]["spec"]["containers"]:
            assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
            assert _args_have(container["args"], "--resources", "GPU=1")
    # The CPU workers offer no GPU.
    for container in cluster["spec"]["worker"]["spec"]["containers"]:
        assert not _args_have(container["args"], "--resources", "GPU=1")
        assert "nvidia.com/gpu" not in container.get("resources", {}).get("limits", {})


def test_kubernetes_orchestrators(manifests: list[dict[str, Any]]) -> None:
    (deployment,) = [
        d
        for d in _of_kind(manifests, "Deployment")
        if "orchestrator" in d["spec"]["template"]["spec"]["containers"][0]["args"]
    ]
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[:2] == ["workbench", "orchestrator"]
    # The instance id is the pod's name, through the downward API.
    instance = args[args.index("--instance-id") + 1]
    variable = re.fullmatch(r"\$\((\w+)\)", instance)
    assert variable, instance
    (source,) = [e for e in container["env"] if e["name"] == variable.group(1)]
    assert source["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # Settings from a ConfigMap and a Secret that exist here.
    refs = container["envFrom"]
    config_maps = {m["metadata"]["name"] for m in _of_kind(manifests, "ConfigMap")}
    secrets = {m["metadata"]["name"] for m in _of_kind(manifests, "Secret")}
    assert any(r.get("configMapRef", {}).get("name") in config_maps for r in refs)
    assert any(r.get("secretRef", {}).get("name") in secrets for r in refs)
    # The profile file it names is mounted from the profile ConfigMap.
    profile = Path(args[args.index("--profile") + 1])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(profile.parent))
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    (profile_map,) = [
        m
        for m in _of_kind(manifests, "ConfigMap")
        if m["metadata"]["name"] == volume["configMap"]["name"]
    ]
    assert profile.name in profile_map["data"]


def test_kubernetes_profile_loads(
    manifests: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_workbench_env(monkeypatch)
    profiles = [
        (name, text)
        for m in _of_kind(manifests, "ConfigMap")
        for name, text in m.get("data", {}).items()
        if name.endswith(".yaml")
    ]
    assert profiles
    for name, text in profiles:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        load_profile(path)


def test_kubernetes_workbench_variables_are_settings(manifests: list[dict[str, Any]]) -> None:
    names = [e["name"] for c in _containers(manifests) for e in c.get("env", [])]
    for kind in ("ConfigMap", "Secret"):
        for manifest in _of_kind(manifests, kind):
            names += list(manifest.get("data", {})) + list(manifest.get("stringData", {}))
    needed = {"WORKBENCH_SCHEDULER_ADDRESS", "WORKBENCH_REDIS_URL", "WORKBENCH_ARTIFACT_ROOT"}
    assert needed <= set(names)
    assert not _settings_env_problems(names)


def test_kubernetes_scheduler_address_is_the_operators_service(
    manifests: list[dict[str, Any]],
) -> None:
    (cluster,) = _of_kind(manifests, "DaskCluster")
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    env = next(
        m for m in _of_kind(manifests, "ConfigMap") if "WORKBENCH_SCHEDULER_ADDRESS" in m["data"]
    )
    assert env["data"]["WORKBENCH_SCHEDULER_ADDRESS"] == (
        f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:8786"
    )


def test_kubernetes_images_are_pinned(manifests: list[dict[str, Any]]) -> None:
    images = [c["image"] for c in _containers(manifests)]
    assert images
    assert not [p for p in map(_image_problem, images) if p]


def test_kubernetes_kafka_runs_in_kraft_mode(manifests: list[dict[str, Any]]) -> None:
    (kafka,) = [m for m in _of_kind(manifests, "StatefulSet") if m["metadata"]["name"] == "kafka"]
    (container,) = kafka["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{env['KAFKA_NODE_ID']}@")
    # KAFKA_* Service-link variables would be read as broker settings.
    assert kafka["spec"]["template"]["spec"]["enableServiceLinks"] is False


# -- Slurm --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def launcher() -> Any:
    path = SLURM / "start_cluster.py"
    spec = importlib.util.spec_from_file_location("workbench_slurm_launcher", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports no dask_jobqueue at module level
    return module


def test_slurm_launcher_compiles_and_imports_jobqueue_lazily(tmp_path: Path) -> None:
    path = SLURM / "start_cluster.py"
    py_compile.compile(str(path), cfile=str(tmp_path / "launcher.pyc"), doraise=True)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {
        alias.name.split(".")[0]
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)
    }
    assert "dask_jobqueue" not in top_level
    source = path.read_text(encoding="utf-8")
    assert "SLURMCluster" in source and "pip install dask-jobqueue" in source


def test_slurm_launcher_without_jobqueue_says_what_to_install(
    launcher: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import fails
    with pytest.raises(SystemExit) as exited:
        launcher.main(["--cpu-jobs", "1"])
    assert "pip install dask-jobqueue" in str(exited.value.code)


def test_slurm_gpu_jobs_ask_slurm_and_dask_for_a_gpu(launcher: Any) -> None:
    args = launcher.parse_args(["--gpu-jobs", "2", "--gpu-partition", "a100", "--account", "p1"])
    gpu = launcher.gpu_job_options(args)
    assert gpu["queue"] == "a100"
    assert any(d.startswith("--gres=gpu") for d in gpu["job_extra_directives"])
    assert "--gres=gpu:1" in gpu["job_extra_directives"]
    assert _args_have(gpu["worker_extra_args"], "--resources", "GPU=1")
    assert gpu["account"] == "p1"
    cpu = launcher.cpu_cluster_options(args)
    assert "job_extra_directives" not in cpu and "worker_extra_args" not in cpu
    assert cpu["scheduler_options"]["port"] == 8786


def test_slurm_profile_loads(
    launcher: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_workbench_env(monkeypatch)
    path = tmp_path / "slurm-cluster.yaml"
    values = launcher.profile_values(
        "tcp://10.1.2.3:8786",
        redis_url="redis://:secret@login1:6379/0",
        kafka="login1:9092",
        artifact_root=str(tmp_path / "shared"),
    )
    launcher.write_profile(path, values)
    assert path.stat().st_mode & 0o077 == 0, "the profile may hold a password"
    settings = load_profile(path)
    assert settings.scheduler_address == "tcp://10.1.2.3:8786"
    assert settings.cluster_mode
    assert settings.kafka_bootstrap_servers == "login1:9092"
    assert settings.artifact_root == tmp_path / "shared"


def test_slurm_jobqueue_config() -> None:
    slurm = yaml.safe_load((SLURM / "jobqueue.yaml").read_text(encoding="utf-8"))["jobqueue"][
        "slurm"
    ]
    for key in ("cores", "memory", "walltime", "queue"):
        assert key in slurm, key
    assert all("_" not in key for key in slurm), "dask config keys use dashes"


# -- docs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [COMPOSE, KUBERNETES, SLURM], ids=lambda p: p.name)
def test_readmes_cover_running_gpus_and_security(folder: Path) -> None:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert "workbench run examples/fraud_detection.yaml" in text
    assert "--profile" in text
    assert "GPU=1" in text
    assert "rediss://" in text
    assert "WORKBENCH_KAFKA_SECURITY_PROTOCOL" in text
