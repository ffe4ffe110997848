"""Start a Dask cluster on Slurm for Workbench and write the profile that reaches it.

One scheduler runs in this process; CPU workers are Slurm jobs of a SLURMCluster
(dask-jobqueue), and GPU workers are jobs of the same cluster on a GPU partition, each
with `--gres=gpu:1` and the Dask resource GPU=1, so that Workbench tasks asking for a GPU
land on them. The cluster lives as long as this process: stop it with Ctrl-C or SIGTERM
and every job is cancelled.

    python clusters/slurm/start_cluster.py --cpu-jobs 4 --gpu-jobs 1 \\
        --partition cpu --gpu-partition gpu --account myproject \\
        --redis-url "$WORKBENCH_REDIS_URL" --artifact-root /shared/project/workbench \\
        --profile-out clusters/slurm-cluster.yaml

Needs dask-jobqueue (`pip install dask-jobqueue`); nothing else in Workbench does.
Defaults for everything not given here can come from ~/.config/dask/jobqueue.yaml (see
jobqueue.yaml next to this script).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

GPU_RESOURCE = "GPU=1"  # the Dask resource a Workbench task's `gpu: 1` asks for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    jobs = parser.add_argument_group("Slurm jobs")
    jobs.add_argument("--cpu-jobs", type=int, default=2, help="CPU worker jobs (default: 2)")
    jobs.add_argument("--gpu-jobs", type=int, default=0, help="GPU worker jobs (default: 0)")
    jobs.add_argument("--partition", help="Partition of the CPU jobs")
    jobs.add_argument("--gpu-partition", default="gpu", help="Partition of the GPU jobs")
    jobs.add_argument("--gpus-per-job", type=int, default=1, help="GPUs of each GPU job")
    jobs.add_argument("--account", help="Slurm account to charge")
    jobs.add_argument("--cores", type=int, default=4, help="Cores per CPU job")
    jobs.add_argument("--memory", default="16GB", help="Memory per CPU job")
    jobs.add_argument("--gpu-cores", type=int, default=4, help="Cores per GPU job")
    jobs.add_argument("--gpu-memory", default="32GB", help="Memory per GPU job")
    jobs.add_argument("--walltime", default="08:00:00", help="Job time limit, HH:MM:SS")
    jobs.add_argument("--interface", help="Network interface of workers and scheduler, e.g. ib0")
    jobs.add_argument(
        "--prologue",
        action="append",
        default=[],
        help="A shell line run in each job before its worker, e.g. 'source ~/venv/bin/activate' "
        "(repeatable)",
    )
    jobs.add_argument("--log-directory", help="Folder of the jobs' output files")
    profile = parser.add_argument_group("Workbench profile")
    profile.add_argument(
        "--profile-out",
        type=Path,
        default=Path("clusters/slurm-cluster.yaml"),
        help="Where the profile is written (default: clusters/slurm-cluster.yaml, so "
        "`--profile slurm-cluster` finds it from the repository root)",
    )
    profile.add_argument(
        "--redis-url",
        help="Redis of the orchestrators; default: none written, set WORKBENCH_REDIS_URL "
        "where the orchestrators run (keeps a password out of the file)",
    )
    profile.add_argument("--kafka", help="Kafka bootstrap servers, host:port[,host:port]")
    profile.add_argument("--namespace", default="workbench-slurm", help="Redis key prefix")
    profile.add_argument(
        "--artifact-root", help="A folder on the shared file system that every node can read"
    )
    parser.add_argument(
        "--print-job-scripts",
        action="store_true",
        help="Print the CPU and GPU job scripts and exit without submitting anything",
    )
    return parser.parse_args(argv)


def common_job_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of every job, CPU or GPU (dask-jobqueue Job keywords)."""
    options: dict[str, Any] = {
        "walltime": args.walltime,
        "python": sys.executable,  # the same environment as this process: same Dask
        "job_script_prologue": list(args.prologue),
        "death_timeout": 120,  # a worker whose scheduler is gone exits (its job ends)
    }
    if args.account:
        options["account"] = args.account
    if args.interface:
        options["interface"] = args.interface
    if args.log_directory:
        options["log_directory"] = args.log_directory
    return options


def cpu_cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords of the SLURMCluster: its scheduler, and the shape of its CPU jobs."""
    options = common_job_options(args)
    options.update(
        cores=args.cores,
        memory=args.memory,
        processes=1,
        scheduler_options={"port": 8786, "dashboard_address": ":8787"},
    )
    if args.partition:
        options["queue"] = args.partition
    return options


def gpu_job_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords of a GPU job (SLURMJob) on the GPU partition: one worker process, the GPUs
    from Slurm's gres, and the Dask resource Workbench schedules GPU tasks by."""
    options = common_job_options(args)
    options.update(
        queue=args.gpu_partition,
        cores=args.gpu_cores,
        memory=args.gpu_memory,
        processes=1,  # one worker per job owns the job's GPU
        job_extra_directives=[f"--gres=gpu:{args.gpus_per_job}"],
        worker_extra_args=["--resources", GPU_RESOURCE],
    )
    return options


def profile_values(
    scheduler_address: str,
    *,
    redis_url: str | None = None,
    kafka: str | None = None,
    namespace: str = "workbench-slurm",
    artifact_root: str | None = None,
) -> dict[str, Any]:
    """The profile's settings (workbench.config.Settings fields)."""
    values: dict[str, Any] = {"scheduler_address": scheduler_address, "namespace": namespace}
    if redis_url:
        values["redis_url"] = redis_url
    if kafka:
        values["kafka_bootstrap_servers"] = kafka
    if artifact_root:
        values["artifact_root"] = artifact_root
    return values


def write_profile(path: Path, values: dict[str, Any]) -> None:
    """Write the profile, readable only by its owner (it may hold a Redis password)."""
    import yaml

    header = (
        "# A Dask cluster on Slurm, written by clusters/slurm/start_cluster.py; valid while\n"
        "# that process runs. Use it:\n"
        f"#   workbench orchestrator --profile {path} --instance-id one\n"
        f"#   workbench run examples/fraud_detection.yaml --profile {path}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(header + yaml.safe_dump(values, sort_keys=False))


def _import_jobqueue() -> Any:
    try:
        import dask_jobqueue
    except ImportError:
        sys.exit(
            "start_cluster.py needs dask-jobqueue, which Workbench does not install:\n"
            "    pip install dask-jobqueue\n"
            "(into the same environment as Workbench, on the login node)"
        )
    return dask_jobqueue


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobqueue = _import_jobqueue()
    from dask_jobqueue.slurm import SLURMJob

    cluster = jobqueue.SLURMCluster(**cpu_cluster_options(args))
    gpu_options = gpu_job_options(args)
    if args.print_job_scripts:
        print("# CPU job\n" + cluster.job_script())
        gpu = SLURMJob(cluster.scheduler_address, name="gpu-0", **gpu_options)
        print("# GPU job\n" + gpu.job_script())
        cluster.close()
        return 0

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        # CPU jobs from the cluster's own job template, then the GPU jobs added to the same
        # cluster's worker specs: one scheduler sees both kinds of worker. Do not call
        # scale() or adapt() with a smaller number afterwards: it would drop GPU jobs.
        cluster.scale(jobs=args.cpu_jobs)
        for index in range(args.gpu_jobs):
            cluster.worker_spec[f"gpu-{index}"] = {"cls": SLURMJob, "options": gpu_options}
        cluster.scale(jobs=len(cluster.worker_spec))

        values = profile_values(
            cluster.scheduler_address,
            redis_url=args.redis_url,
            kafka=args.kafka,
            namespace=args.namespace,
            artifact_root=args.artifact_root,
        )
        write_profile(args.profile_out, values)
        print(f"scheduler {cluster.scheduler_address}, dashboard {cluster.dashboard_link}")
        print(f"{args.cpu_jobs} CPU and {args.gpu_jobs} GPU job(s) submitted; see squeue --me")
        print(f"profile written to {args.profile_out}; Ctrl-C stops the cluster")
        stop.wait()
    finally:
        print("stopping: cancelling the jobs", file=sys.stderr)
        cluster.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
