"""Training service costs: MLflow tracking overhead on the training loop, and submit -> running.

1. Tracking overhead, in one process: the trainer's loop (`training_code.engine.fit`, same data,
   seed and model) with tracking off, then inside an MLflow run that logs what the trainer logs
   (params, four metrics per epoch with step=epoch, the epochs.json artifact, summary metrics)
   to the workspace's SQLite store. Runs alternate off/on to cancel drift;
   examples/s = train rows x epochs / seconds.
   Target: overhead <= 5%. A third variant logs the epoch metrics asynchronously.
2. Submit -> running: `miniautoml train submit` as a real process in a warm workspace, then the
   job's MLflow run polled until the runner claimed it (launch) and the trainer resumed it
   (RUNNING); each job is cancelled once running. Local jobs start cold (the path before warm
   starts: `MINIAUTOML_WARM_START=0`, runners exit when the queue is empty) and warm (the
   default), alternating job by job; then on the Ray backend (`cluster up --num-cpus 1`, always
   `cluster down`) when Ray is installed. Target: warm submit -> running <= 3 s.

    .venv/bin/python benchmarks/bench_training.py [--epochs 5] [--repeats 3] [--jobs 3] [--only submit] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, CLINC, print_table, write_results

DROP_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME",
            "MINIAUTOML_MAX_RUNNERS", "MINIAUTOML_WORKSPACE")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in DROP_ENV}


# --- 1. tracking overhead -------------------------------------------------------------------------
def tracking_overhead(workspace: Path, epochs: int, repeats: int) -> dict:
    import mlflow
    import torch
    from omegaconf import OmegaConf

    from miniautoml.adapters import mlflow as mlflow_adapter
    from miniautoml.config import load_settings
    from training_code import data, engine
    from training_code.model import ModelSpec, build_model, build_optimisation
    from training_code.tokenizer import Tokenizer
    from training_code.tracking import flatten
    from training_code.train import load_config

    for key in DROP_ENV:
        os.environ.pop(key, None)
    settings = load_settings(workspace)
    mlflow_adapter.configure(settings)
    experiment_id = mlflow_adapter.ensure_experiment(settings, "bench-tracking")
    cfg = OmegaConf.to_container(load_config([f"epochs={epochs}", "patience=0"]), resolve=True)
    examples = data.load_csv(f"{CLINC / 'demo-part1.csv'}{os.pathsep}{CLINC / 'demo-part2.csv'}")
    parts = data.split(examples.labels, 0.1, 0.1, 42)
    tokenizer = Tokenizer.build((examples.texts[i] for i in parts.train), ngrams=2, min_count=1)
    encoded = [tokenizer.encode(t) for t in examples.texts]
    spec = ModelSpec(name="fasttext", vocab_size=len(tokenizer), num_labels=len(examples.label_names),
                     embed_dim=100, hidden_dim=0)
    torch.set_num_threads(1)

    in_tracking = [0.0]  # seconds spent inside MLflow calls during the current run

    def tracked(fn, *a, **kw):
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            in_tracking[0] += time.perf_counter() - t0

    epoch_times: list[dict] = []

    def log_epoch(r, synchronous: bool = True) -> None:  # what training_code.train logs per epoch
        tracked(mlflow.log_metrics,
                {"loss": r.loss, "train_accuracy": r.train_accuracy, "val_loss": r.val_loss,
                 "val_accuracy": r.val_accuracy},
                step=r.epoch, synchronous=synchronous, timestamp=int(r.end_time * 1000))
        epoch_times.append({"epoch": r.epoch, "start_time": r.start_time, "end_time": r.end_time})
        tracked(mlflow.log_dict, {"epochs": epoch_times}, "epochs.json")  # the epochs' times

    def one(mode: str) -> tuple[float, float, int]:
        torch.manual_seed(42)
        model = build_model(spec)
        opt = build_optimisation(model, "adam", 0.01)
        in_tracking[0] = 0.0
        epoch_times.clear()
        start = time.perf_counter()
        kwargs = dict(epochs=epochs, batch_size=32, patience=0, seed=42)
        if mode == "off":
            fit = engine.fit(model, opt, encoded, examples.labels, parts.train, parts.val, **kwargs)
        else:
            synchronous = mode == "on"
            run = tracked(mlflow.start_run, experiment_id=experiment_id)
            tracked(mlflow.log_params, flatten(cfg))
            fit = engine.fit(model, opt, encoded, examples.labels, parts.train, parts.val,
                             on_epoch=lambda r: log_epoch(r, synchronous), **kwargs)
            tracked(mlflow.log_metrics, {"best_val_accuracy": fit.best_val_accuracy, "epochs_trained": len(fit.history)})
            if not synchronous:
                tracked(mlflow.flush_async_logging)
            assert run is not None
            tracked(mlflow.end_run)
        return time.perf_counter() - start, in_tracking[0], len(fit.history)

    one("on")  # warm-up: first-use costs (DB engine, torch kernels) stay out of the numbers
    times: dict[str, list[float]] = {"off": [], "on": [], "on-async": []}
    inside: dict[str, list[float]] = {"off": [], "on": [], "on-async": []}
    for rep in range(repeats):
        order = ["off", "on", "on-async"] if rep % 2 == 0 else ["on-async", "on", "off"]
        for mode in order:
            seconds, tracking_s, trained = one(mode)
            assert trained == epochs
            times[mode].append(seconds)
            inside[mode].append(tracking_s)
    rows = len(parts.train) * epochs
    result = {"train_rows": len(parts.train), "epochs": epochs, "repeats": repeats, "modes": {}}
    # The fastest of several runs estimates the cost without the machine's noise; the share of
    # time spent inside MLflow calls is measured within each run, so it is immune to drift.
    base = min(times["off"])
    for mode, samples in times.items():
        best = min(samples)
        share = statistics.median(t / (s - t) for s, t in zip(samples, inside[mode])) if mode != "off" else 0.0
        result["modes"][mode] = {
            "seconds_min": best,
            "seconds": samples,
            "examples_per_s": rows / best,
            "throughput_ratio": base / best,
            "overhead_pct": 100.0 * (best - base) / base,
            "in_tracking_calls_pct": 100.0 * share,
            "in_tracking_calls_ms_per_epoch": 1000.0 * statistics.median(inside[mode]) / epochs,
        }
    return result


# --- 2. submit -> running ----------------------------------------------------------------------------
# The two job starts, each in a workspace of its own so their jobs can alternate (drift hits both):
# cold is the path before warm starts (a runner per drained queue, `mlflow run` CLI, a new trainer
# interpreter); warm is the default (a runner that preloaded the trainer forks each job, and waits
# idle for the next one). The warm runner's idle window is raised from its default 60 s so that
# it outlasts the cold job in between on a loaded machine; its first job starts the runner.
PATHS = {
    "cold": {"MINIAUTOML_WARM_START": "0", "MINIAUTOML_RUNNER_IDLE_SECONDS": "0"},
    "warm": {"MINIAUTOML_RUNNER_IDLE_SECONDS": "600"},
}


def _cli(workspace: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    proc = subprocess.run([str(BIN / "miniautoml"), "-w", str(workspace), *args], capture_output=True, text=True,
                          env=clean_env() | (env or {}), check=False, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"miniautoml {' '.join(args[:2])} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def one_job(workspace: Path, data: Path, env: dict[str, str], backend: str = "local") -> dict:
    """`train submit` as a real process, the run polled until claimed (launch) and RUNNING, then cancelled."""
    from miniautoml.adapters import mlflow as mlflow_adapter
    from miniautoml.config import load_settings
    from miniautoml.jobs import cancel_job, wait_job

    settings = load_settings(workspace)
    client = mlflow_adapter.client(settings)
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = _cli(workspace, "train", "submit", "--backend", backend, "--data-path", str(data), "--model-name", "bench",
               "-P", "epochs=100000", "-P", "patience=0", env=env)
    submitted = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CLI's own CPU time: load-independent
    submit_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    job_id = out.split('"job_id": "')[1].split('"')[0]
    launched = running = None
    deadline = time.monotonic() + 300
    while running is None and time.monotonic() < deadline:
        run = client.get_run(job_id)
        now = time.perf_counter() - start
        if launched is None and run.data.tags.get("miniautoml.job_state") == "launch":
            launched = now
        if run.info.status == "RUNNING":
            running = now
            launched = launched or now
        elif run.info.status in ("FINISHED", "FAILED", "KILLED"):
            raise RuntimeError(f"job {job_id} ended {run.info.status} before it was seen running")
        time.sleep(0.02)
    if running is None:
        raise RuntimeError(f"job {job_id} not running after 300 s")
    cancel_job(settings, job_id)
    wait_job(settings, job_id, timeout=120)
    return {"job_id": job_id, "submit_returns_s": submitted, "to_launch_s": launched, "to_running_s": running,
            "returned_to_running_s": running - submitted, "submit_cpu_s": submit_cpu}


def _summary(samples: list[dict]) -> dict:
    keys = ("submit_returns_s", "to_launch_s", "to_running_s", "returned_to_running_s", "submit_cpu_s")
    return {"jobs": len(samples), "samples": samples, "median": {k: statistics.median(s[k] for s in samples) for k in keys}}


def submit_to_running(root: Path, jobs: int, ray: bool) -> dict:
    from miniautoml.adapters import mlflow as mlflow_adapter
    from miniautoml.config import load_settings
    from miniautoml.jobs import stop_runners

    data = root / "bench-slice.csv"
    with open(CLINC / "demo-part1.csv", encoding="utf-8") as src:
        data.write_text("".join(line for _, line in zip(range(2000), src)), encoding="utf-8")
    spaces = {}
    for name in [*PATHS, *(["ray"] if ray else [])]:
        spaces[name] = root / f"ws-{name}"
        spaces[name].mkdir()
        mlflow_adapter.ensure_experiment(load_settings(spaces[name]))  # warm workspace: DB and experiment exist
    samples: dict[str, list[dict]] = {name: [] for name in PATHS}
    try:
        for i in range(jobs):  # alternate the paths job by job, the order flipped every other round
            for name in (list(PATHS) if i % 2 == 0 else list(PATHS)[::-1]):
                samples[name].append(one_job(spaces[name], data, PATHS[name]))
    finally:
        for name in PATHS:
            stop_runners(load_settings(spaces[name]))
    result = {name: _summary(found) for name, found in samples.items()}
    # The warm path's first job also starts its runner (a cold interpreter that preloads the trainer).
    result["warm_after_first"] = _summary(samples["warm"][1:]) if jobs > 1 else None
    if ray:
        ws = spaces["ray"]
        try:
            _cli(ws, "cluster", "up", "--num-cpus", "1", timeout=180)
            result["ray"] = _summary([one_job(ws, data, {}, backend="ray") for _ in range(jobs)])
        finally:
            _cli(ws, "cluster", "down", timeout=120)
    return result


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=3, help="jobs per job start path (median of them)")
    parser.add_argument("--only", choices=("tracking", "submit"), help="run one part (the results file gets it alone)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend's submit -> running")
    args = parser.parse_args()

    overhead = latency = None
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root = Path(tmp)
        if args.only != "submit":
            ws = root / "ws"
            ws.mkdir()
            overhead = tracking_overhead(ws, args.epochs, args.repeats)
        if args.only != "tracking":
            ray = not args.no_ray and _ray_installed()
            if not args.no_ray and not ray:
                print("ray is not installed (pip install -e '.[ray]'): Ray backend not measured", file=sys.stderr)
            latency = submit_to_running(root, args.jobs, ray)

    results: dict = {}
    if overhead is not None:
        print_table(
            f"Training loop, {overhead['train_rows']} train rows x {overhead['epochs']} epochs "
            f"(fastest of {overhead['repeats']} alternating runs)",
            ["tracking", "seconds", "examples/s", "ratio to off", "overhead %", "in MLflow calls %", "MLflow ms/epoch"],
            [[mode, m["seconds_min"], round(m["examples_per_s"]), m["throughput_ratio"], m["overhead_pct"],
              m["in_tracking_calls_pct"], m["in_tracking_calls_ms_per_epoch"]]
             for mode, m in overhead["modes"].items()],
        )
        on = overhead["modes"]["on"]
        # Judge on the larger of the two estimates: wall-clock ratio and measured time in MLflow calls.
        measured = max(on["overhead_pct"], on["in_tracking_calls_pct"])
        met = measured <= 5.0
        print(f"\ntracking overhead {measured:.1f}% (wall {on['overhead_pct']:.1f}%, in MLflow calls "
              f"{on['in_tracking_calls_pct']:.1f}%; target <= 5%: {'met' if met else 'MISSED'})")
        results["tracking_overhead"] = overhead
        results["targets"] = {"tracking_overhead_pct_max": 5.0, "tracking_overhead_pct": measured,
                              "tracking_overhead_met": met}
    if latency is not None:
        rows = []
        for name in ("cold", "warm", "ray"):
            if latency.get(name):
                rows += [[name, s["job_id"][:8], s["submit_returns_s"], s["submit_cpu_s"], s["to_launch_s"],
                          s["to_running_s"], s["returned_to_running_s"]] for s in latency[name]["samples"]]
        print_table(f"train submit -> running (seconds per job; cold and warm alternate, {args.jobs} jobs each)",
                    ["path", "job", "submit returns", "submit CPU", "-> launch", "-> running", "returned -> running"],
                    rows)
        base = latency["cold"]["median"]
        medians = [(name, latency[name]["median"]) for name in ("cold", "warm", "warm_after_first", "ray")
                   if latency.get(name)]
        print_table(
            "medians (ratio: cold path / this path, same run)",
            ["path", "-> running", "ratio", "returned -> running", "ratio", "submit returns", "submit CPU"],
            [[name, m["to_running_s"], base["to_running_s"] / m["to_running_s"], m["returned_to_running_s"],
              base["returned_to_running_s"] / m["returned_to_running_s"], m["submit_returns_s"], m["submit_cpu_s"]]
             for name, m in medians],
        )
        warm = latency["warm"]["median"]["to_running_s"]
        print(f"\nsubmit -> running (local, warm): median {warm:.2f}s, {base['to_running_s'] / warm:.1f}x faster "
              f"than the cold path's {base['to_running_s']:.2f}s (target <= 3 s: {'met' if warm <= 3.0 else 'MISSED'}); "
              f"of it, `train submit` itself takes {latency['warm']['median']['submit_returns_s']:.2f}s "
              f"({latency['warm']['median']['submit_cpu_s']:.2f}s CPU); after it returns, "
              f"{latency['warm']['median']['returned_to_running_s']:.2f}s vs {base['returned_to_running_s']:.2f}s cold")
        results["submit_to_running"] = latency
        results.setdefault("targets", {}).update({"submit_to_running_s_max": 3.0, "submit_to_running_s": warm,
                                                  "submit_to_running_met": warm <= 3.0})
    name = "training" if args.only is None else f"training-{args.only}"
    write_results(name, results)


if __name__ == "__main__":
    sys.exit(main())
