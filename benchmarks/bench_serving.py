"""Serving benchmark: one registered model, served several ways, loaded by `wrk`.

    python benchmarks/bench_serving.py [--duration 15] [--warmup 10] [--servers mlflow,ours,...]
        [--algorithms intent-classification,intent-minilm] [--minilm-limit 3000]

Needs `wrk` on PATH (Debian/Ubuntu: `apt-get install -y wrk`); this script installs nothing.
In one run, for each algorithm (`--algorithms`, default `intent-classification`):
  1. trains a model on data/clinc150/demo-part1.csv in a fresh workspace and registers
     it (`bench-intent` / `bench-minilm`, alias `champion`); intent-minilm (frozen
     all-MiniLM-L6-v2 + head, ~100x the compute per document) trains on a seeded
     `data.limit` slice (--minilm-limit) to keep it short;
  2. measures in-process prediction (the limit): `predict_texts` of one document, of a batch of
     64, and MLflow's `pyfunc.predict` of one document;
  3. for each server, serving that algorithm's model: cold start (process launch -> first
     successful prediction), a warm-up at the first level, then single-document POSTs at
     1/16/64 concurrent connections (`wrk --latency`, one thread, a Lua script cycling held-out
     documents from demo-part2.csv): req/s, p50, p99, errors (--minilm-levels: other levels
     for intent-minilm);
  4. per server also: CPU ms and context switches per request (of the server's processes: less
     blurred by a busy machine than latency), RSS/PSS of its processes after the load, and one
     client right after a 16-client burst, in --burst-window second windows (BentoML's batcher
     sizes its wait from recent waits; unpatched it kept a lone client slow for ~30 s);
  5. prints a table per algorithm (ratios to the mlflow peer of the same run, issue 13's
     targets) and writes benchmarks/results/serving.json.

Servers: `mlflow` = `mlflow models serve --env-manager local` (the peer, 1 worker);
`mlflow-1t` = the same with OMP_NUM_THREADS=1 (our servers run torch with one thread per worker;
a model whose loader does not pin threads gets torch's default, one per core, in the peer);
`ours` = `miniautoml serve` without adaptive batching; `ours-batching` = with it (the default
configuration); `ours-batching-unpatched` = the same with BentoML's own batcher waits
(MINIAUTOML_BATCH_WAIT_PATCH=0: the baseline of compat.bentoml's batch-wait patch, in the same run);
`ours-batching-2w` = the same with 2 workers; `ours-stock` = batching with
BentoML's stock GC/timer behaviour (MINIAUTOML_GC_FREEZE=0, MINIAUTOML_PATCH_TIMEOUT_TIMERS=0),
to show where the p99 tail comes from.
Every Nth request (--recycle, default 100) asks for `Connection: close`, for every server alike:
wrk opens all connections at once and one worker process would otherwise accept all of them.
Figures on a shared 2-core machine are noisy: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from miniautoml.processes import free_port, process_tree, stop_tree

REPO = Path(__file__).resolve().parents[1]
CLINC = REPO / "data" / "clinc150"
BIN = Path(sys.executable).parent
RESULTS = REPO / "benchmarks" / "results" / "serving.json"
ALIAS = "champion"


@dataclass(frozen=True)
class Algorithm:
    key: str
    model: str  # registered model name
    overrides: tuple[str, ...] = ()  # extra `training_code.train` arguments
    data_limit: bool = False  # train on --minilm-limit rows of demo-part1.csv


ALGORITHMS = {
    a.key: a
    for a in [
        Algorithm("intent-classification", "bench-intent"),
        Algorithm("intent-minilm", "bench-minilm", ("algorithm=intent-minilm", "model=minilm"), data_limit=True),
    ]
}


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    kind: str  # "mlflow" | "ours"
    env: dict[str, str] = field(default_factory=dict)


SERVERS = {
    s.key: s
    for s in [
        ServerSpec("mlflow", "mlflow models serve (peer)", "mlflow"),
        ServerSpec("mlflow-1t", "mlflow models serve, OMP_NUM_THREADS=1", "mlflow", {"OMP_NUM_THREADS": "1"}),
        ServerSpec("ours", "ours, no batching", "ours", {"MINIAUTOML_BATCHING": "0"}),
        ServerSpec("ours-batching", "ours, adaptive batching", "ours", {"MINIAUTOML_BATCHING": "1"}),
        ServerSpec(
            "ours-batching-2w", "ours, batching, 2 workers", "ours", {"MINIAUTOML_BATCHING": "1", "MINIAUTOML_WORKERS": "2"}
        ),
        ServerSpec(
            "ours-batching-unpatched",
            "ours, batching, stock batcher waits",
            "ours",
            {"MINIAUTOML_BATCHING": "1", "MINIAUTOML_BATCH_WAIT_PATCH": "0"},
        ),
        ServerSpec(
            "ours-stock",
            "ours, batching, stock GC+timers",
            "ours",
            {"MINIAUTOML_BATCHING": "1", "MINIAUTOML_GC_FREEZE": "0", "MINIAUTOML_PATCH_TIMEOUT_TIMERS": "0"},
        ),
    ]
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def base_env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINIAUTOML_", "MLFLOW_")) and k != "BENTOML_HOME"}
    env.update(
        MINIAUTOML_WORKSPACE=str(workspace),
        MLFLOW_TRACKING_URI=f"sqlite:///{workspace / '.miniautoml' / 'mlflow.db'}",
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        BENTOML_DO_NOT_TRACK="True",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # `mlflow models serve` runs `uvicorn`
    )
    return env


# --------------------------------------------------------------------------------------------
# The model and the documents
# --------------------------------------------------------------------------------------------


def prepare_model(workspace: Path, algorithm: Algorithm, epochs: int, limit: int) -> str:
    env = base_env(workspace)
    sliced = f", data.limit={limit}" if algorithm.data_limit and limit else ""
    log(f"training {algorithm.key} as {algorithm.model} on demo-part1.csv{sliced} ({epochs} epochs) in {workspace} ...")
    argv = [sys.executable, "-m", "training_code.train", *algorithm.overrides, f"data.path={CLINC / 'demo-part1.csv'}",
            f"epochs={epochs}", f"model_name={algorithm.model}", f"run_name=serving-benchmark-{algorithm.key}"]
    if sliced:
        argv.append(f"data.limit={limit}")
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    log(f"  trained in {time.perf_counter() - started:.1f}s")
    found = re.search(r"^run ([0-9a-f]{32}):.*", proc.stdout, re.MULTILINE)
    if proc.returncode != 0 or not found:
        sys.exit(f"training failed:\n{proc.stderr[-3000:]}")
    log("  " + found.group(0))
    promote = subprocess.run(
        [str(BIN / "miniautoml"), "-w", str(workspace), "models", "promote", algorithm.model, "1", "--alias", ALIAS],
        env=env, capture_output=True, text=True,
    )
    if promote.returncode != 0:
        sys.exit(f"promote failed: {promote.stderr.strip()}")
    return found.group(1)


def documents(limit: int = 500) -> list[str]:
    with open(CLINC / "demo-part2.csv", encoding="utf-8", newline="") as fh:
        return [row[0] for _, row in zip(range(limit), csv.reader(fh)) if row and row[0].strip()]


# --------------------------------------------------------------------------------------------
# In process: the limit
# --------------------------------------------------------------------------------------------

IN_PROCESS = r"""
import json, sys, time
import pandas as pd
import mlflow.pyfunc
from miniautoml.serving import server

import torch

run_id, docs = sys.argv[1], json.loads(sys.argv[2])
model = server.load_python_model(server.ModelSource(run_id, f"runs:/{run_id}/model"))
pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
torch.set_num_threads(1)  # as in one server worker (bentos/service.py); loading may not pin it

def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]

def rate(call, n_max, seconds, per_call=1):
    # docs/s of call(i) repeated up to n_max times or for about `seconds`, and the latencies
    lat = []
    start = time.perf_counter()
    for i in range(n_max):
        t = time.perf_counter()
        call(i)
        lat.append(time.perf_counter() - t)
        if t + lat[-1] - start > seconds:
            break
    return len(lat) * per_call / (time.perf_counter() - start), lat

for d in docs[:50]:
    model.predict_texts([d])
single, lat = rate(lambda i: model.predict_texts([docs[i % len(docs)]]), 3000, 5.0)
batch = (docs * 3)[:64]
model.predict_texts(batch)
batched, _ = rate(lambda i: model.predict_texts(batch), 200, 5.0, per_call=64)
pyfunc.predict(pd.DataFrame({"text": docs[:1]}))
pyfunc_rate, _ = rate(lambda i: pyfunc.predict(pd.DataFrame({"text": [docs[i % len(docs)]]})), 300, 3.0)
print(json.dumps({
    "single_docs_per_s": single, "single_p50_ms": pct(lat, 0.5) * 1e3, "single_p99_ms": pct(lat, 0.99) * 1e3,
    "batch64_docs_per_s": batched, "pyfunc_single_docs_per_s": pyfunc_rate,
}))
"""


def measure_in_process(workspace: Path, run_id: str, docs: list[str]) -> dict:
    log("in-process predictions ...")
    proc = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, run_id, json.dumps(docs)],
        env=base_env(workspace), capture_output=True, text=True, cwd=REPO,
    )
    if proc.returncode != 0:
        sys.exit(f"in-process measurement failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------


def request_body(kind: str, model_id: str, doc: str) -> str:
    if kind == "mlflow":
        return json.dumps({"dataframe_split": {"columns": ["text"], "data": [[doc]]}})
    return json.dumps({"model_id": model_id, "document": doc})


def lua_script(path: str, bodies: list[str], recycle: int) -> str:
    items = ",\n".join(f"[==[{b}]==]" for b in bodies)
    return f"""-- generated by bench_serving.py: POST single documents, cycling held-out texts
local bodies = {{
{items}
}}
local keep = {{["Content-Type"] = "application/json"}}
local close = {{["Content-Type"] = "application/json", ["Connection"] = "close"}}
local recycle = {recycle}
local n = 0
request = function()
  n = n + 1
  local headers = keep
  if recycle > 0 and n % recycle == 0 then headers = close end
  return wrk.format("POST", "{path}", headers, bodies[(n % #bodies) + 1])
end
"""


class Running:
    def __init__(self, spec: ServerSpec, model: str, workspace: Path, logdir: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = base_env(workspace)
        env.update(spec.env)
        if spec.kind == "mlflow":
            argv = [str(BIN / "mlflow"), "models", "serve", "-m", f"models:/{model}/1", "--env-manager", "local",
                    "-h", "127.0.0.1", "-p", str(self.port)]
            self.path, self.model_id = "/invocations", f"models:/{model}/1"
        else:
            argv = [str(BIN / "miniautoml"), "-w", str(workspace), "serve", "--port", str(self.port)]
            self.path, self.model_id = "/predict", f"{model}@{ALIAS}"
        self.log_path = logdir / f"{model}-{spec.key}.log"
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )

    def first_prediction(self, doc: str, timeout: float = 180.0) -> float:
        """Seconds from process launch to the first successful prediction."""
        body = request_body(self.spec.kind, self.model_id, doc).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.spec.key} exited {self.proc.returncode}; see {self.log_path}")
            req = urllib.request.Request(self.url + self.path, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.started
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.02)
        sys.exit(f"{self.spec.key}: no prediction within {timeout}s; see {self.log_path}")

    def metrics(self) -> str:
        try:
            with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
                return resp.read().decode()
        except (urllib.error.URLError, OSError):
            return ""

    def family(self) -> list:
        return process_tree(self.proc.pid)

    def cpu_seconds(self) -> tuple[float, int]:
        """User + system CPU time of the server's processes so far, and their context switches."""
        total, switches = 0.0, 0
        for p in self.family():
            try:
                t = p.cpu_times()
                total += t.user + t.system
                switches += sum(p.num_ctx_switches())
            except Exception:
                pass
        return total, switches

    def memory(self) -> dict:
        """RSS of the largest process (the worker) and RSS/PSS summed over the server's processes, MB."""
        rss, pss = [], []
        for p in self.family():
            try:
                info = p.memory_full_info()
                rss.append(info.rss)
                pss.append(getattr(info, "pss", info.rss))
            except Exception:
                pass
        mb = 1024 * 1024
        return {"worker_rss_mb": round(max(rss, default=0) / mb, 1), "total_rss_mb": round(sum(rss) / mb, 1),
                "total_pss_mb": round(sum(pss) / mb, 1), "processes": len(rss)}

    def stop(self) -> None:
        stop_tree(self.family(), grace=20)
        self.proc.wait(timeout=20)


def gc_pauses(metrics_text: str) -> dict:
    """Counts of full (generation 2) collections from miniautoml_gc_pause_seconds."""
    out: dict[str, float] = {}
    for line in metrics_text.splitlines():
        m = re.match(r'miniautoml_gc_pause_seconds_(count|sum)\{generation="2"\} (\S+)', line)
        if m:
            out[m.group(1)] = float(m.group(2))
        m = re.match(r'miniautoml_gc_pause_seconds_bucket\{generation="2",le="([^"]+)"\} (\S+)', line)
        if m:
            out[f"le_{m.group(1)}"] = float(m.group(2))
    if "count" not in out:
        return {}
    return {
        "full_collections": int(out["count"]),
        "full_total_ms": round(out.get("sum", 0.0) * 1e3, 1),
        "full_over_20ms": int(out["count"] - out.get("le_0.02", out["count"])),
        "full_over_100ms": int(out["count"] - out.get("le_0.1", out["count"])),
    }


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def run_wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True,
    ).stdout
    result = {"clients": connections, "load_average": os.getloadavg()[0]}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(m.group(1)) if m else 0.0
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{q}_ms"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"(\d+) requests in", out)
    result["requests"] = int(m.group(1)) if m else 0
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    result["errors"] = errors
    return result


def bench_server(
    spec: ServerSpec, model: str, workspace: Path, workdir: Path, docs: list[str], args: argparse.Namespace
) -> dict:
    log(f"== {model}: {spec.label}")
    running = Running(spec, model, workspace, workdir)
    try:
        cold = running.first_prediction(docs[0])
        log(f"  cold start to first prediction: {cold:.2f}s")
        script = workdir / f"{model}-{spec.key}.lua"
        script.write_text(
            lua_script(running.path, [request_body(spec.kind, running.model_id, d) for d in docs], args.recycle)
        )
        # Warm up at the first (lowest) level: BentoML's batcher sizes its wait from recent waits,
        # and after a burst it takes ~30 s to stop waiting for company at one client.
        run_wrk(running.url + running.path, script, args.levels[0], args.warmup)
        levels = []
        for clients in args.levels:
            cpu, switches = running.cpu_seconds()
            r = run_wrk(running.url + running.path, script, clients, args.duration)
            # Per request: the server's CPU time and context switches (each a trip through the
            # scheduler): less blurred by a busy machine than latency.
            cpu_after, switches_after = running.cpu_seconds()
            n = r["requests"] or float("nan")
            r["cpu_ms_per_request"] = (cpu_after - cpu) * 1e3 / n
            r["ctx_switches_per_request"] = (switches_after - switches) / n
            log(f"  {clients:>3} clients: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:8.2f} ms  "
                f"cpu {r['cpu_ms_per_request']:.2f} ms/req  {r['ctx_switches_per_request']:.1f} ctx switches/req  errors {r['errors']}  (load {r['load_average']:.1f})")
            levels.append(r)
        single = next((r for r in levels if r["clients"] == 1), None)
        burst = after_burst(running, script, args, single) if args.burst_windows else {}
        memory = running.memory()
        log(f"  memory after load: worker RSS {memory['worker_rss_mb']} MB, all {memory['processes']} processes "
            f"RSS {memory['total_rss_mb']} MB, PSS {memory['total_pss_mb']} MB")
        gc = gc_pauses(running.metrics()) if spec.kind == "ours" else {}
        if gc:
            log(f"  full GCs: {gc['full_collections']}, {gc['full_total_ms']} ms in all, {gc['full_over_20ms']} over 20 ms")
        return {"key": spec.key, "label": spec.label, "env": spec.env, "cold_start_s": cold, "levels": levels,
                "after_burst": burst, "memory": memory, "gc": gc}
    finally:
        running.stop()


def after_burst(running: "Running", script: Path, args: argparse.Namespace, before: dict | None) -> dict:
    """One client right after a 16-client burst, in short windows: does the adaptive batcher
    (which sizes its wait from recent waits) keep a lone client waiting for company? `before`:
    the 1-client level, measured before any burst (else measured now, after the levels)."""
    url = running.url + running.path
    before = before or run_wrk(url, script, 1, args.burst_window)
    burst = run_wrk(url, script, 16, args.duration)
    windows = [run_wrk(url, script, 1, args.burst_window) for _ in range(args.burst_windows)]
    log(f"  1 client before any burst: {before['rps']:.0f} req/s; right after a 16-client burst, per {args.burst_window} s: "
        + ", ".join(f"{w['rps']:.0f}" for w in windows) + " req/s")
    return {"window_s": args.burst_window, "before": before, "burst": burst, "windows": windows}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def table(report: dict) -> str:
    lines = []
    for algo in report["algorithms"]:
        ip = algo["in_process"]
        lines += [
            f"### {algo['algorithm']} ({algo['model']}@{ALIAS})",
            "",
            f"in process (the limit): predict_texts 1 doc {ip['single_docs_per_s']:.0f} docs/s "
            f"(p50 {ip['single_p50_ms']:.3f} ms, p99 {ip['single_p99_ms']:.3f} ms); 64-doc batches "
            f"{ip['batch64_docs_per_s']:.0f} docs/s; MLflow pyfunc.predict 1 doc {ip['pyfunc_single_docs_per_s']:.0f} docs/s",
            "",
            "| server | cold start | clients | req/s | vs peer | p50 ms | p99 ms | CPU ms/req | ctx sw/req | errors |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        peer = next(({r["clients"]: r for r in s["levels"]} for s in algo["servers"] if s["key"] == "mlflow"), {})
        for s in algo["servers"]:
            for i, r in enumerate(s["levels"]):
                label = s["label"] if i == 0 else ""
                cold = f"{s['cold_start_s']:.1f} s" if i == 0 else ""
                p = peer.get(r["clients"])
                vs = f"{r['rps'] / p['rps']:.1f}x" if p and p["rps"] and s["key"] != "mlflow" else ""
                lines.append(
                    f"| {label} | {cold} | {r['clients']} | {r['rps']:.0f} | {vs} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r.get('cpu_ms_per_request', float('nan')):.2f} | {r.get('ctx_switches_per_request', float('nan')):.1f} | "
                    f"{r['errors']} |"
                )
        lines += ["", "| server | worker RSS MB | all processes RSS MB | PSS MB | RSS vs peer |", "|---|---|---|---|---|"]
        peer_mem = next((s.get("memory") for s in algo["servers"] if s["key"] == "mlflow"), None)
        for s in algo["servers"]:
            m = s.get("memory") or {}
            if m:
                vs = f"{m['total_rss_mb'] / peer_mem['total_rss_mb']:.2f}x" if peer_mem and s["key"] != "mlflow" else ""
                lines.append(f"| {s['label']} | {m['worker_rss_mb']:.0f} | {m['total_rss_mb']:.0f} | {m['total_pss_mb']:.0f} | {vs} |")
        bursts = [(s["label"], s["after_burst"]) for s in algo["servers"] if s.get("after_burst")]
        if bursts:
            w = bursts[0][1]["window_s"]
            lines += ["", f"1 client right after a 16-client burst, req/s per {w} s window (before: the 1-client level, before any burst)", ""]
            for label, b in bursts:
                lines.append(f"- {label}: before {b['before']['rps']:.0f}; after " + ", ".join(f"{x['rps']:.0f}" for x in b["windows"]))
        if algo.get("targets"):
            lines.append("")
            for t in algo["targets"]:
                lines.append(f"{'PASS' if t['met'] else 'MISS'}  {t['what']}: {t['value']}")
        lines.append("")
    return "\n".join(lines).rstrip()


def targets(servers: list[dict]) -> list[dict]:
    """Issue 13's targets for the default configuration (ours, batching on, one worker)."""
    by_key = {s["key"]: {r["clients"]: r for r in s["levels"]} for s in servers}
    out = []
    peer, ours = by_key.get("mlflow"), by_key.get("ours-batching")
    if peer and ours:
        for clients, want in ((1, 3), (16, 15)):
            if clients in peer and clients in ours and peer[clients]["rps"] > 0:
                ratio = ours[clients]["rps"] / peer[clients]["rps"]
                out.append({"what": f"ours (batching) / mlflow throughput at {clients} clients >= {want}x",
                            "value": f"{ratio:.1f}x", "met": ratio >= want})
    if ours:
        for clients, what, limit in ((1, "p50", 1), (16, "p99", 10), (64, "p99", 25)):
            if clients in ours:
                value = ours[clients][f"{what}_ms"]
                out.append({"what": f"ours (batching) {what} at {clients} clients < {limit} ms", "value": f"{value:.2f} ms",
                            "met": value < limit})
    burst = next((s["after_burst"] for s in servers if s["key"] == "ours-batching" and s.get("after_burst")), None)
    if burst and burst["windows"] and burst["before"]["rps"] > 0:
        ratio = burst["windows"][0]["rps"] / burst["before"]["rps"]
        out.append({"what": f"ours (batching): 1 client in the first {burst['window_s']} s after a burst >= 0.5x its rate before",
                    "value": f"{ratio:.2f}x", "met": ratio >= 0.5})
    errors = sum(r["errors"] for s in servers if s["key"] != "mlflow" for r in s["levels"])
    out.append({"what": "no errors from our servers", "value": str(errors), "met": errors == 0})
    return out


def ratios(servers: list[dict]) -> list[dict]:
    """Throughput and p99 of every server relative to the mlflow peer, per level (informative)."""
    by_key = {s["key"]: {r["clients"]: r for r in s["levels"]} for s in servers}
    peer = by_key.get("mlflow")
    out = []
    if not peer:
        return out
    for key, levels in by_key.items():
        if key == "mlflow":
            continue
        for clients, r in levels.items():
            p = peer.get(clients)
            if p and p["rps"] > 0 and r["p99_ms"] > 0:
                out.append({"server": key, "clients": clients, "rps_x": round(r["rps"] / p["rps"], 2),
                            "p99_x": round(p["p99_ms"] / r["p99_ms"], 2)})
    return out


def versions() -> dict:
    from importlib import metadata

    found = {}
    for dist in ("bentoml", "mlflow", "torch", "uvicorn", "uvloop", "httptools"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = None
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per concurrency level")
    parser.add_argument("--warmup", type=int, default=10, help="seconds of warm-up load per server")
    parser.add_argument("--levels", default="1,16,64", help="concurrent connections, comma-separated")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"any of {', '.join(SERVERS)}")
    parser.add_argument("--algorithms", "--algorithm", default="intent-classification",
                        help=f"comma-separated, any of {', '.join(ALGORITHMS)}")
    parser.add_argument("--minilm-limit", type=int, default=3000,
                        help="intent-minilm trains on a seeded slice of this many rows (0: all of demo-part1.csv)")
    parser.add_argument("--minilm-levels", default=None, help="levels for intent-minilm (default: --levels)")
    parser.add_argument("--recycle", type=int, default=100, help="every Nth request closes its connection (0: never)")
    parser.add_argument("--burst-windows", type=int, default=5,
                        help="after the levels: 1 client, a 16-client burst, then this many 1-client windows (0: skip)")
    parser.add_argument("--burst-window", type=int, default=2, help="seconds per 1-client window around the burst")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the workspace and logs here")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    minilm_levels = [int(x) for x in (args.minilm_levels or args.levels).split(",") if x.strip()]
    keys = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in keys if k not in SERVERS]
    if unknown:
        parser.error(f"unknown servers: {', '.join(unknown)}")
    algorithms = [a.strip() for a in args.algorithms.split(",") if a.strip()]
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown or not algorithms:
        parser.error(f"unknown algorithms: {', '.join(unknown)} (any of {', '.join(ALGORITHMS)})")
    if shutil.which("wrk") is None:
        sys.exit("wrk not found on PATH: install it first (Debian/Ubuntu: apt-get install -y wrk)")
    if not (CLINC / "demo-part1.csv").is_file():
        sys.exit(f"data missing: {CLINC}")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-serving-"))
    workdir.mkdir(parents=True, exist_ok=True)
    workspace = workdir / "ws"
    workspace.mkdir(exist_ok=True)
    docs = documents()
    report = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions(),
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "recycle": args.recycle,
                     "burst_windows": args.burst_windows, "burst_window_s": args.burst_window,
                     "wrk_threads": 1, "documents": len(docs), "minilm_limit": args.minilm_limit},
        "algorithms": [],
    }
    for key in algorithms:
        algorithm = ALGORITHMS[key]
        run_id = prepare_model(workspace, algorithm, args.epochs, args.minilm_limit)
        args.levels = minilm_levels if key == "intent-minilm" else levels
        entry = {"algorithm": key, "model": algorithm.model, "run_id": run_id, "levels": args.levels,
                 "trained_rows": args.minilm_limit if algorithm.data_limit and args.minilm_limit else None,
                 "in_process": measure_in_process(workspace, run_id, docs), "servers": []}
        for server in keys:
            entry["servers"].append(bench_server(SERVERS[server], algorithm.model, workspace, workdir, docs, args))
        entry["targets"] = targets(entry["servers"])
        entry["vs_mlflow"] = ratios(entry["servers"])
        report["algorithms"].append(entry)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
        log(f"\nwrote {args.output}")
    else:
        log(f"\nwrote {args.output}; workspace, scripts and server logs kept in {workdir}")


if __name__ == "__main__":
    main()
