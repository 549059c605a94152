"""Dataset service vs the raw cost of the same bytes, against a real S3 server (moto).

For each input: create / update / prepare / fetch through `miniautoml.datasets` (in process,
so interpreter start-up is not counted), beside "raw" = CSV parse + one `minio` upload of the
same file, in the same run, and the same create through the DVC Repo `add` + `push` path it
replaced (issue 13). Targets: a small (CLINC150 part) commit <= 0.15 s, a 1M-row commit within
1.3x raw; re-prepare well under 1 s.

    .venv/bin/python benchmarks/bench_datasets.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import CLINC, print_table, start_moto, timed, timed_cpu, write_results


def generate(path: Path, rows: int, seed: int = 7) -> Path:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    labels = [f"intent_{i}" for i in range(150)]
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        for _ in range(rows):
            writer.writerow([" ".join(rng.choices(words, k=rng.randint(3, 12))), rng.choice(labels)])
    return path


def raw_commit(path: Path, endpoint: str, bucket: str) -> None:
    """The floor: parse every row once and upload the bytes once."""
    from minio import Minio

    with open(path, encoding="utf-8", newline="") as handle:
        n = sum(1 for _ in csv.reader(handle))
    assert n > 0
    client = Minio(endpoint.removeprefix("http://"), access_key="bench", secret_key="bench-secret", secure=False)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    client.fput_object(bucket, f"raw/{path.name}-{time.time_ns()}", str(path))


def previous_track_and_push(settings, path: Path, progress) -> str:
    """The commit path this replaced (issue 13): `dvc add` + `dvc push` through a DVC Repo."""
    from miniautoml.adapters import dvc, s3

    with dvc.open_repo(settings) as repo:
        md5 = dvc.add(repo, [path])[path]
        if settings.storage.is_s3:
            s3.ensure_bucket(settings.storage)
        dvc.push(repo, [path.with_name(path.name + ".dvc")])
    return md5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--no-previous", dest="previous", action="store_false",
                        help="skip the same creates through the DVC Repo add+push path this replaced")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-datasets-"))
    proc, endpoint = start_moto(work)
    os.environ.update(
        MINIAUTOML_S3_ENDPOINT=endpoint, MINIAUTOML_S3_BUCKET="bench", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret"
    )
    from miniautoml.config import load_settings
    from miniautoml.datasets import create_dataset, fetch_snapshot, prepare_snapshot, service, update_dataset
    from miniautoml.workspace import init_workspace

    rows, results = [], {}
    try:
        big = generate(work / "big.csv", args.rows)
        inputs = {
            "clinc150 part1+part2": (CLINC / "demo-part1.csv", CLINC / "demo-part2.csv"),
            f"generated {args.rows:,} rows": (big, None),
        }
        for label, (first, second) in inputs.items():
            settings = load_settings(work / f"ws-{len(results)}")
            init_t, _ = timed(lambda: init_workspace(settings))  # one-time: git init, dvc init, bucket
            rows.append([label, "init workspace (one-time)", init_t, "", ""])
            raw_t, raw_cpu, _ = timed_cpu(lambda: raw_commit(first, endpoint, "rawbench"), repeat=3)
            names = iter(["bench-a", "bench-b", "bench"])  # the last one is used below
            create_t, create_cpu, summary = timed_cpu(lambda: create_dataset(settings, next(names), "TEXT_INTENT", first), repeat=3)
            entry = {"init_s": init_t, "bytes": first.stat().st_size, "raw_commit_s": raw_t, "create_s": create_t,
                     "create_ratio": create_t / raw_t, "raw_cpu_s": raw_cpu, "create_cpu_s": create_cpu}
            rows.append([label, "create (commit 1)", create_t, raw_t, create_t / raw_t])
            rows.append([label, "create (commit 1), CPU time", create_cpu, raw_cpu, create_cpu / raw_cpu if raw_cpu else ""])
            if args.previous:  # the same create through the DVC Repo path it replaced, same run
                names_before = iter([f"before-{i}" for i in range(3)])
                original = service._track_and_push
                service._track_and_push = previous_track_and_push
                try:
                    before_t, before_cpu, _ = timed_cpu(
                        lambda: create_dataset(settings, next(names_before), "TEXT_INTENT", first), repeat=3
                    )
                finally:
                    service._track_and_push = original
                rows.append([label, "create, previous path (DVC Repo add+push)", before_t, raw_t, before_t / raw_t])
                rows.append([label, "create, previous path, CPU time", before_cpu, raw_cpu, before_cpu / raw_cpu if raw_cpu else ""])
                entry.update(create_previous_s=before_t, create_previous_cpu_s=before_cpu, create_vs_previous=create_t / before_t)
            if second is not None:
                raw2_t, _ = timed(lambda: raw_commit(second, endpoint, "rawbench"), repeat=3)
                update_t, _ = timed(lambda: update_dataset(settings, "bench", second))
                rows.append([label, "update (commit 2)", update_t, raw2_t, update_t / raw2_t])
                entry.update(update_s=update_t, raw_update_s=raw2_t)
            prep_t, version = timed(lambda: prepare_snapshot(settings, "bench"))
            reprep_t, _ = timed(lambda: prepare_snapshot(settings, "bench"), repeat=5)
            snap_dir = Path(fetch_snapshot(settings, "bench", version.version_hash).root)
            fetch_local_t, _ = timed(lambda: fetch_snapshot(settings, "bench", version.version_hash), repeat=3)
            shutil.rmtree(snap_dir)
            fetch_pull_t, _ = timed(lambda: fetch_snapshot(settings, "bench", version.version_hash))
            cli = str(Path(os.sys.executable).parent / "miniautoml")
            cli_t, _ = timed(lambda: subprocess.run([cli, "-w", str(settings.workspace), "dataset", "prepare", "bench"], check=True, capture_output=True), repeat=3)
            rows += [
                [label, "prepare (build snapshot)", prep_t, "", ""],
                [label, "re-prepare (API)", reprep_t, "", ""],
                [label, "re-prepare (CLI process)", cli_t, "", ""],
                [label, "fetch (on disk)", fetch_local_t, "", ""],
                [label, "fetch (pull from S3)", fetch_pull_t, "", ""],
            ]
            entry.update(prepare_s=prep_t, reprepare_s=reprep_t, reprepare_cli_s=cli_t, fetch_local_s=fetch_local_t, fetch_pull_s=fetch_pull_t)
            results[label] = entry
        print_table("Dataset service vs raw (CSV parse + one minio upload), seconds", ["input", "operation", "ours", "raw", "ratio"], rows)
        write_results("datasets", {"endpoint": "moto_server", "results": results})
    finally:
        proc.terminate()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
