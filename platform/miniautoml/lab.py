"""The book's lab end to end: dataset → train → run info → golden set → serve → predict → second
commit → retrain → promote through the gate → the running service answers with the champion.

"Better" is decided by the gate (`evaluation.promotion`): both versions evaluated on one golden
set (the demo's evaluation part, disjoint from its training parts), not by each run's own test
split. With `--data` and no `--golden` there is no golden set and the retrained version is
promoted as before (`gate: none`).

`run_lab` yields one `LabStep` per step; the CLI prints them. The prediction service is a real
`bentoml serve` process, started here and stopped when the lab ends (unless kept).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miniautoml import algorithms, datasets, jobs, registry, runs, stack
from miniautoml.serving import client as serving_client
from miniautoml.config import PROJECT_ROOT, Settings
from miniautoml.errors import UserInputError
from miniautoml.evaluation import golden as golden_sets
from miniautoml.evaluation import promotion
from miniautoml.ports import require_free_port
from miniautoml.processes import free_port

DEMO_DATA = (PROJECT_ROOT / "data/demo/intents-part1.csv", PROJECT_ROOT / "data/demo/intents-part2.csv")
DEMO_GOLDEN = PROJECT_ROOT / "data/demo/intents-eval.csv"  # the demo's evaluation part: no row of DEMO_DATA
MODEL_NAME = "lab-intent"
ALIAS = "champion"
SENTENCE = "what will the weather be like tomorrow"
FIRST_PARAMS = {"epochs": "10"}
SECOND_PARAMS = {"epochs": "20", "lr": "0.02"}  # the book's lab retrains with other params


@dataclass
class LabStep:
    step: str
    result: Any

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "result": self.result}


@dataclass
class LabOptions:
    data: tuple[Path, ...] = DEMO_DATA
    port: int = 0  # 0: a free port
    keep_serving: bool = False
    sentence: str = SENTENCE
    ready_timeout: float = 180.0
    algorithm: str = algorithms.DEFAULT_ALGORITHM
    golden: Path | None = DEMO_GOLDEN  # the golden set's CSV; None: no gate


def _dataset_name(settings: Settings) -> str:
    """`lab-intents`, or `lab-intents-N` when earlier labs ran in this workspace."""
    taken = {d.name for d in datasets.list_datasets(settings)}
    name, n = "lab-intents", 1
    while name in taken:
        n += 1
        name = f"lab-intents-{n}"
    return name


def _check_data(paths: tuple[Path, ...]) -> tuple[Path, Path]:
    if len(paths) != 2:
        raise UserInputError(f"--data: give two CSV files (commit 1 and commit 2), got {len(paths)}")
    return paths[0], paths[1]


def _train(
    settings: Settings, dataset_id: str, version_hash: str, params: dict[str, str], algorithm: str,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    job_id = jobs.submit_job(
        settings, model_name=MODEL_NAME, dataset_id=dataset_id, version_hash=version_hash, params=params,
        algorithm=algorithm,
    )
    on_epoch = lambda epoch: progress(f"      {epoch.line()}")  # noqa: E731 - indented under its step
    status = jobs.wait_job(settings, job_id, raise_on_failure=True, on_epoch=on_epoch)
    versions = registry.versions_of_run(settings, job_id)
    return {"job_id": job_id, "status": status.status, "algorithm": algorithm,
            "model_version": versions[0].version if versions else None}


def _golden(settings: Settings, name: str, path: Path | None) -> dict[str, Any]:
    """Dataset `<name>-golden` from `path`, its snapshot set as the lab model's golden set."""
    if path is None:
        return {"golden": None, "gate": "none: no golden set (--data without --golden)"}
    summary = datasets.create_dataset(settings, f"{name}-golden", "TEXT_INTENT", path, "the lab's golden set", {"lab": "golden"})
    snapshot = datasets.prepare_snapshot(settings, summary.dataset_id)
    return {"dataset": summary.name, "golden": golden_sets.set_golden(settings, MODEL_NAME, summary.dataset_id,
                                                                     snapshot.version_hash)}


def _predict_until(url: str, model_id: str, sentence: str, version: str, timeout: float = 30.0) -> dict[str, Any]:
    """Predict by alias until the answer comes from `version` (the service refreshes aliases)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = serving_client.request_prediction(url, model_id, [sentence])
        if str(answer.get("model_version")) == str(version) or time.monotonic() >= deadline:
            return answer
        time.sleep(0.5)


def run_lab(settings: Settings, options: LabOptions, progress: Callable[[str], None]) -> Iterator[LabStep]:
    first, second = _check_data(options.data)
    algorithm = algorithms.get_algorithm(options.algorithm)  # an unknown or uninstalled one fails first
    algorithms.check_available(algorithm)
    if options.port:  # before the first step: a busy port leaves no dataset behind
        require_free_port("127.0.0.1", options.port, "--port", what="the lab's prediction service")
    name = _dataset_name(settings)

    progress(f"[1/13] create dataset {name} from {first}")
    summary = datasets.create_dataset(settings, name, "TEXT_INTENT", first, "the lab's intent data", {"lab": "001"})
    yield LabStep("create_dataset", summary)

    progress("[2/13] prepare a training snapshot")
    v1 = datasets.prepare_snapshot(settings, summary.dataset_id)
    yield LabStep("prepare", v1)

    progress(f"[3/13] train {algorithm.name} (job = MLflow run = model id)")
    job1 = _train(settings, summary.dataset_id, v1.version_hash, FIRST_PARAMS, algorithm.name, progress)
    yield LabStep("train", job1)

    progress("[4/13] run info from the metadata store")
    yield LabStep("run_info", {"run_info": runs.show_run(settings, job1["job_id"])})

    progress("[5/13] the golden set: one fixed snapshot both versions are evaluated on")
    yield LabStep("golden", _golden(settings, name, options.golden))

    first_promotion = promotion.promote(settings, MODEL_NAME, job1["model_version"], ALIAS)  # nobody holds it yet
    port = options.port or free_port()
    url = f"http://127.0.0.1:{port}"
    progress(f"[6/13] serve on {url}")
    server = stack.start_prediction_service(
        settings, port,
        # The promotion shows within a second; the first model loads before /readyz, so the first
        # prediction never waits for a download from the artifact store (20 s request budget).
        env={"MINIAUTOML_ALIAS_REFRESH_SECONDS": "1", "MINIAUTOML_PRELOAD_MODELS": job1["job_id"]},
        log=settings.state_dir / "lab-serve.log", timeout=options.ready_timeout,
    )
    try:
        yield LabStep("serve", {"url": url, "pid": server.pid, "champion": f"{MODEL_NAME}@{ALIAS}"})

        progress("[7/13] predict by model id")
        yield LabStep("predict", serving_client.request_prediction(url, job1["job_id"], [options.sentence]))

        progress(f"[8/13] update the dataset with {second} (lab-005)")
        summary = datasets.update_dataset(settings, summary.dataset_id, second, "lab-005: more intents", {"lab": "005"})
        yield LabStep("update_dataset", summary)

        progress("[9/13] prepare the new selection")
        v2 = datasets.prepare_snapshot(settings, summary.dataset_id)
        yield LabStep("prepare", v2)

        progress("[10/13] retrain with other params")
        job2 = _train(settings, summary.dataset_id, v2.version_hash, SECOND_PARAMS, algorithm.name, progress)
        yield LabStep("train", job2)

        progress("[11/13] promote the better model: the gate compares both on the golden set")
        acc = {j["model_version"]: runs.get_run(settings, j["job_id"]).data.metrics.get("test_accuracy", 0.0) for j in (job1, job2)}
        gated = promotion.promote(settings, MODEL_NAME, job2["model_version"], ALIAS, progress=progress)
        best = gated.version if gated.moved else (gated.holder or first_promotion.version)
        yield LabStep("promote", {"alias": ALIAS, "version": best, "candidate": gated.version, "gate": gated.gate,
                                  "failed": gated.failed, "decision": gated.decision, "test_accuracy": acc})

        progress(f"[12/13] predict by {MODEL_NAME}@{ALIAS}")
        yield LabStep("predict_champion", _predict_until(url, f"{MODEL_NAME}@{ALIAS}", options.sentence, best))
    finally:
        if not options.keep_serving:
            server.cancel(grace=20.0)
    progress("[13/13] done")
    champion = {"model": f"{MODEL_NAME}@{ALIAS}", "version": best, "test_accuracy": acc[best], "gate": gated.gate}
    yield LabStep("done", {"workspace": str(settings.workspace), "serving": url if options.keep_serving else None,
                           "url": url, "champion": champion})
