"""Training service costs: MLflow tracking overhead on the training loop, and submit -> running.

1. Tracking overhead, in one process: the trainer's loop (`training_code.engine.fit`, same data,
   seed and model) with tracking off, then inside an MLflow run that logs what the trainer logs
   (params, four metrics per epoch with step=epoch, the epochs.json artifact, summary metrics)
   to the workspace's SQLite store. Runs alternate off/on to cancel drift;
   examples/s = train rows x epochs / seconds.
   Target: overhead <= 5%. A third variant logs the epoch metrics asynchronously.
2. Submit -> running: `miniautoml train submit` as a real process in a warm workspace, then the
   job's MLflow run polled until the runner claimed it (launch) and the trainer resumed it
   (RUNNING); each job is cancelled once running.

    .venv/bin/python benchmarks/bench_training.py [--epochs 5] [--repeats 3] [--jobs 3]
"""

from __future__ import annotations

import argparse
import os
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
def submit_to_running(workspace: Path, jobs: int) -> dict:
    from miniautoml.adapters import mlflow as mlflow_adapter
    from miniautoml.config import load_settings
    from miniautoml.jobs import cancel_job, wait_job

    settings = load_settings(workspace)
    client = mlflow_adapter.client(settings)
    mlflow_adapter.ensure_experiment(settings)  # warm workspace: DB and experiment exist
    data = workspace.parent / "bench-slice.csv"
    with open(CLINC / "demo-part1.csv", encoding="utf-8") as src:
        data.write_text("".join(line for _, line in zip(range(2000), src)), encoding="utf-8")
    samples = []
    for _ in range(jobs):
        start = time.perf_counter()
        proc = subprocess.run(
            [str(BIN / "miniautoml"), "-w", str(workspace), "train", "submit", "--data-path", str(data),
             "--model-name", "bench", "-P", "epochs=100000", "-P", "patience=0"],
            capture_output=True, text=True, env=clean_env(), check=True,
        )
        submitted = time.perf_counter() - start
        job_id = proc.stdout.split('"job_id": "')[1].split('"')[0]
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
            time.sleep(0.05)
        if running is None:
            raise RuntimeError(f"job {job_id} not running after 300 s")
        cancel_job(settings, job_id)
        wait_job(settings, job_id, timeout=120)
        samples.append({"job_id": job_id, "submit_returns_s": submitted, "to_launch_s": launched, "to_running_s": running})
    return {
        "jobs": jobs,
        "samples": samples,
        "median": {k: statistics.median(s[k] for s in samples) for k in ("submit_returns_s", "to_launch_s", "to_running_s")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root = Path(tmp)
        ws = root / "ws"
        ws.mkdir()
        overhead = tracking_overhead(ws, args.epochs, args.repeats)
        latency = submit_to_running(ws, args.jobs)

    print_table(
        f"Training loop, {overhead['train_rows']} train rows x {overhead['epochs']} epochs "
        f"(fastest of {overhead['repeats']} alternating runs)",
        ["tracking", "seconds", "examples/s", "ratio to off", "overhead %", "in MLflow calls %", "MLflow ms/epoch"],
        [[mode, m["seconds_min"], round(m["examples_per_s"]), m["throughput_ratio"], m["overhead_pct"],
          m["in_tracking_calls_pct"], m["in_tracking_calls_ms_per_epoch"]]
         for mode, m in overhead["modes"].items()],
    )
    print_table(
        f"train submit -> running ({latency['jobs']} jobs, warm workspace, seconds)",
        ["job", "submit returns", "-> launch", "-> running"],
        [[s["job_id"][:8], s["submit_returns_s"], s["to_launch_s"], s["to_running_s"]] for s in latency["samples"]]
        + [["median", *latency["median"].values()]],
    )
    on = overhead["modes"]["on"]
    # Judge on the larger of the two estimates: wall-clock ratio and measured time in MLflow calls.
    measured = max(on["overhead_pct"], on["in_tracking_calls_pct"])
    target = measured <= 5.0
    print(f"\ntracking overhead {measured:.1f}% (wall {on['overhead_pct']:.1f}%, in MLflow calls "
          f"{on['in_tracking_calls_pct']:.1f}%; target <= 5%: {'met' if target else 'MISSED'})")
    write_results("training", {"tracking_overhead": overhead, "submit_to_running": latency,
                               "targets": {"tracking_overhead_pct_max": 5.0, "tracking_overhead_pct": measured,
                                           "tracking_overhead_met": target}})


if __name__ == "__main__":
    sys.exit(main())
