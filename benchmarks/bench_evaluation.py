"""Evaluation cost: `evaluate` of a version on a 3,000-row CLINC150 golden set against the bare
`pyfunc.predict` of the same rows, in the same process.

One version is trained (CLI, `train submit --wait`) on `data/clinc150/demo-part1.csv`; the golden
set is the first 3,000 rows of `demo-part2.csv` (no text in common with part 1), a dataset of
the workspace. In this process: the floor is `mlflow.pyfunc.load_model(...).predict(frame)` of
those rows (median of 3, model loaded once); the evaluation is `evaluation.service.evaluate`
(reads both snapshots, removes the overlap, loads the model, predicts through the serving
predictor, `mlflow.models.evaluate` with its artifacts, logs the run) after a warm-up evaluation on
a 200-row snapshot (imports of MLflow's evaluation, sklearn, matplotlib paid once, as by any
process); then the same call again (cached: a run search). CPU time is shown beside wall time:
on a shared machine CPU time shows the work, wall time the wait. Targets: overhead (evaluation
minus floor) <= 2x the floor; cached <= 0.5 s.

    .venv/bin/python benchmarks/bench_evaluation.py [--rows 3000] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from common import BIN, CLINC, print_table, timed_cpu, write_results

DROP_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
            "MLFLOW_EXPERIMENT_NAME", "MINIAUTOML_MAX_RUNNERS", "MINIAUTOML_WORKSPACE")
MODEL = "bench-eval"


def cli(ws: Path, *args: str, timeout: float = 1800) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in DROP_ENV}
    proc = subprocess.run([str(BIN / "miniautoml"), "-w", str(ws), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RuntimeError(f"miniautoml {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def head(src: Path, dest: Path, rows: int, skip: int = 0) -> Path:
    with open(src, encoding="utf-8") as fh:
        lines = fh.readlines()[skip:skip + rows]
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--profile", type=Path, default=None, help="also write cProfile stats of a second new evaluation here")
    args = parser.parse_args()
    for key in DROP_ENV:
        os.environ.pop(key, None)

    with tempfile.TemporaryDirectory(prefix="bench-evaluation-") as tmp:
        ws = Path(tmp) / "ws"
        ws.mkdir()
        golden_csv = head(CLINC / "demo-part2.csv", Path(tmp) / "golden.csv", args.rows)
        warm_csv = head(CLINC / "demo-part2.csv", Path(tmp) / "warm.csv", 200, skip=args.rows)
        cli(ws, "dataset", "create", "train", "--type", "TEXT_INTENT", "--file", str(CLINC / "demo-part1.csv"))
        train_hash = cli(ws, "dataset", "prepare", "train")["version_hash"]
        for name, path in (("golden", golden_csv), ("warm", warm_csv)):
            cli(ws, "dataset", "create", name, "--type", "TEXT_INTENT", "--file", str(path))
            cli(ws, "dataset", "prepare", name)
        job = cli(ws, "train", "submit", "--dataset", "train", "--version-hash", train_hash, "--model-name", MODEL,
                  "-P", f"epochs={args.epochs}", "--wait")
        version = job["metadata"]["model_version"]
        cli(ws, "train", "runner", "--stop", timeout=120)

        import mlflow.pyfunc
        import pandas as pd

        from miniautoml.adapters import mlflow as mlflow_adapter
        from miniautoml.config import load_settings
        from miniautoml.datasets.formats import iter_intents
        from miniautoml.evaluation.golden import snapshot_set
        from miniautoml.evaluation.service import evaluate

        settings = load_settings(ws)
        mlflow_adapter.configure(settings)
        frame = pd.DataFrame({"text": [ex.text for ex in iter_intents(golden_csv)]})
        model = mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}")
        load_wall, load_cpu, _ = timed_cpu(lambda: mlflow.pyfunc.load_model(f"models:/{MODEL}/{version}"))
        floor_wall, floor_cpu, _ = timed_cpu(lambda: model.predict(frame), repeat=3)

        evaluate(settings, MODEL, version, snapshot_set(settings, "warm", "hashAg=="))  # the imports, once
        golden = snapshot_set(settings, "golden", "hashAg==")
        eval_wall, eval_cpu, first = timed_cpu(lambda: evaluate(settings, MODEL, version, golden))
        cached_wall, cached_cpu, again = timed_cpu(lambda: evaluate(settings, MODEL, version, golden), repeat=3)
        assert not first.cached and again.cached and again.run_id == first.run_id
        if args.profile:  # the same work on all rows but one, as a new run (another snapshot md5)
            import cProfile

            profiled = head(golden_csv, Path(tmp) / "profiled.csv", args.rows - 1)
            cli(ws, "dataset", "create", "profiled", "--type", "TEXT_INTENT", "--file", str(profiled))
            cli(ws, "dataset", "prepare", "profiled")
            other = snapshot_set(settings, "profiled", "hashAg==")
            cProfile.runctx("evaluate(settings, MODEL, version, other)", globals(), locals(), str(args.profile))

    overhead = eval_wall - floor_wall
    rows = [
        ["pyfunc.load_model (not in the floor)", load_wall, load_cpu, ""],
        [f"floor: pyfunc.predict of {first.rows} rows", floor_wall, floor_cpu, "1.00x"],
        ["evaluate (new run)", eval_wall, eval_cpu, f"{eval_wall / floor_wall:.2f}x"],
        ["  overhead beyond the floor", overhead, eval_cpu - floor_cpu, f"{overhead / floor_wall:.2f}x (target <= 2x)"],
        ["evaluate again (cached)", cached_wall, cached_cpu, "target <= 0.5 s"],
    ]
    print_table(f"evaluation of {MODEL} v{version} on {first.rows} CLINC150 rows ({first.overlap_rows} overlap), "
                f"accuracy {first.metrics['accuracy']:.3f}", ["step", "wall s", "cpu s", "vs floor"], rows)
    write_results("bench_evaluation", {
        "rows": first.rows, "overlap_rows": first.overlap_rows, "metrics": first.metrics, "epochs": args.epochs,
        "load_model_s": load_wall, "floor_predict_s": floor_wall, "floor_predict_cpu_s": floor_cpu,
        "evaluate_s": eval_wall, "evaluate_cpu_s": eval_cpu, "overhead_s": overhead,
        "overhead_vs_floor": overhead / floor_wall, "cached_s": cached_wall, "cached_cpu_s": cached_cpu,
        "targets": {"overhead_vs_floor_max": 2.0, "cached_s_max": 0.5},
    })


if __name__ == "__main__":
    main()
