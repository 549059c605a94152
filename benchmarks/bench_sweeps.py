"""Sweep parallelism: `miniautoml train sweep` wall time against the sum of its trials' times.

Each sweep runs `--trials N` small trials (a 300-row CLINC slice, `epochs=E`, lr searched) as a
real CLI process in a fresh workspace, with `--parallel 1` (the baseline, measured in the same
run) and `--parallel 2` on the local runners, then on Ray when Ray is installed: one node
(`cluster up --num-cpus 2`) and two nodes (a 1-CPU head plus a 1-CPU worker joined with `ray start
--address`, both on this machine), always taken down. A trial's time is its job run's submit -> end (runner or
Ray start, `mlflow run`, trainer, model logging). Parallel efficiency = sum of trial times /
(wall x K): 1.0 when K trials always run side by side at no extra cost each; speed-up = the
baseline's wall / this wall.

    .venv/bin/python benchmarks/bench_sweeps.py [--trials 4] [--epochs 2] [--no-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from common import BIN, CLINC, print_table, write_results

DROP_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
            "MINIAUTOML_MAX_RUNNERS", "MINIAUTOML_WORKSPACE")


def cli(ws: Path, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    return subprocess.run([str(BIN / "miniautoml"), "-w", str(ws), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def stop_runners(ws: Path) -> None:
    cli(ws, "train", "runner", "--stop", timeout=60)


def sweep(ws: Path, data: Path, trials: int, parallel: int, epochs: int, backend: str) -> dict:
    """One sweep; its wall time and its trials' times from their runs."""
    from mlflow import MlflowClient

    start = time.perf_counter()
    proc = cli(ws, "train", "sweep", "--data-path", str(data), "--model-name", "bench", "--backend", backend,
               "--trials", str(trials), "--parallel", str(parallel), "--seed", "0",
               "-P", "lr=tag(log, interval(1e-3, 1e-1))", "-P", f"epochs={epochs}", "-P", "patience=0")
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout)
    client = MlflowClient(tracking_uri=f"sqlite:///{ws / '.miniautoml' / 'mlflow.db'}")
    times = []
    for trial in out["trials"]:
        run = client.get_run(trial["run_id"])
        times.append((run.info.end_time - run.info.start_time) / 1000)
    total = sum(times)
    return {
        "backend": backend, "parallel": parallel, "trials": trials, "wall_s": wall, "trial_sum_s": total,
        "trial_mean_s": total / len(times), "efficiency": total / (wall * parallel),
        "failed": sum(t["status"] != "succeed" for t in out["trials"]),
    }


def join_worker(gcs_address: str, temp_dir: str, log: Path) -> subprocess.Popen:
    """A second Ray node on this machine: `ray start --address`, ports and temp dir of its own."""
    from miniautoml.processes import free_port

    argv = [str(BIN / "ray"), "start", "--address", gcs_address, "--block", "--node-ip-address", "127.0.0.1",
            "--num-cpus", "1", "--object-store-memory", "100000000", "--temp-dir", temp_dir,
            "--disable-usage-stats"]
    for name in ("node-manager-port", "object-manager-port", "dashboard-agent-listen-port",
                 "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port"):
        argv += [f"--{name}", str(free_port())]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", *DROP_ENV)}
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, env={**env, "RAY_USAGE_STATS_ENABLED": "0"})


def kill_tree(proc: subprocess.Popen) -> None:
    """The worker node's processes only (never `ray stop`: it stops every Ray on the machine)."""
    from miniautoml.processes import process_tree, stop_tree

    stop_tree(process_tree(proc.pid), grace=0)
    proc.wait()


def ray_sweep(root: Path, data: Path, args: argparse.Namespace, nodes: int) -> dict:
    """A K=2 sweep on a Ray cluster of `nodes` nodes with 2 CPUs in all."""
    ws = new_workspace(root, f"ray-{nodes}")
    up = cli(ws, "cluster", "up", "--num-cpus", str(3 - nodes), timeout=180)
    worker, worker_tmp = None, tempfile.mkdtemp(prefix="mam-rayw-")
    try:
        if up.returncode != 0:
            raise RuntimeError(f"cluster up failed: {up.stderr[-2000:]}")
        if nodes == 2:
            worker = join_worker(json.loads(up.stdout)["gcs_address"], worker_tmp, root / "worker.log")
            deadline = time.monotonic() + 120
            while json.loads(cli(ws, "cluster", "status").stdout).get("node_count", 0) < 2:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError(f"the worker node never joined: {(root / 'worker.log').read_text()[-2000:]}")
                time.sleep(1)
        result = sweep(ws, data, args.trials, 2, args.epochs, "ray")
        result["nodes"] = nodes
        return result
    finally:
        if worker is not None:
            kill_tree(worker)
        cli(ws, "cluster", "down", timeout=120)
        stop_runners(ws)


def new_workspace(root: Path, name: str) -> Path:
    ws = root / name
    (ws / ".miniautoml").mkdir(parents=True)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as tmp:
        root = Path(tmp)
        data = root / "slice.csv"
        with open(CLINC / "demo-part1.csv", encoding="utf-8") as fh:
            data.write_text("".join(line for _, line in zip(range(300), fh)), encoding="utf-8")
        for parallel in (1, 2):
            ws = new_workspace(root, f"local-{parallel}")
            try:
                results.append(sweep(ws, data, args.trials, parallel, args.epochs, "local"))
            finally:
                stop_runners(ws)
        if not args.no_ray:
            import importlib.util

            if importlib.util.find_spec("ray") is None:
                print("ray not installed: Ray rows skipped (pip install -e '.[ray]')")
            else:
                for nodes in (1, 2):
                    results.append(ray_sweep(root, data, args, nodes))
    baseline = next(r for r in results if r["backend"] == "local" and r["parallel"] == 1)
    for r in results:
        r["speedup_vs_local_p1"] = baseline["wall_s"] / r["wall_s"]
    print_table(
        f"train sweep: {args.trials} trials of epochs={args.epochs} on 300 rows ({os.cpu_count()} CPUs)",
        ["backend", "nodes", "K", "wall s", "sum of trials s", "mean trial s", "efficiency", "speed-up", "failed"],
        [[r["backend"], r.get("nodes", 1), r["parallel"], r["wall_s"], r["trial_sum_s"], r["trial_mean_s"], r["efficiency"],
          r["speedup_vs_local_p1"], r["failed"]] for r in results],
    )
    write_results("sweeps", {"trials": args.trials, "epochs": args.epochs, "rows": 300, "results": results})


if __name__ == "__main__":
    main()
