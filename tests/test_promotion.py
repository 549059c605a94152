"""`models promote` through the gate, with real models and a running prediction service: a worse
version is refused (the alias and the service's answers stay), a better one passes and is served."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import BIN, job_env, wait_until
from evaluation_support import BAD, GOOD, MODEL, EvalWorkspace, demo_workspace
from serving_support import Server, free_port, start_server

pytestmark = pytest.mark.slow
DOCS = ["remind me to call the bank at noon", "tell me a funny joke", "what's the weather in paris"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, mlflow_template) -> Iterator[EvalWorkspace]:
    """Champion: version 1, trained on part 1 only (it knows 10 of the golden set's 12 intents)."""
    ws = demo_workspace(tmp_path_factory.mktemp("promotion"), mlflow_template)
    assert ws.train("hashAg==", GOOD) == "1"
    ws.ok("models", "golden", MODEL, "--dataset", "golden", "--version-hash", "hashAg==")
    first = ws.ok("models", "promote", MODEL, "1", "--alias", "champion")
    assert (first["gate"], first["holder"], first["decision"]["baseline"]) == ("passed", None, None)
    yield ws
    ws.stop()


@pytest.fixture(scope="module")
def server(ws: EvalWorkspace, tmp_path_factory: pytest.TempPathFactory) -> Server:
    port = free_port()
    argv = [str(BIN / "miniautoml"), "-w", str(ws.path), "serve", "--port", str(port)]
    srv = start_server(argv, job_env(MINIAUTOML_ALIAS_REFRESH_SECONDS="1"), tmp_path_factory.mktemp("serve") / "log",
                       port=port)
    yield srv
    srv.stop()


def holder(ws: EvalWorkspace, alias: str = "champion") -> str:
    return str(ws.client().get_model_version_by_alias(MODEL, alias).version)


def champion_versions(server: Server) -> set[int]:
    answers = []
    for doc in DOCS:
        status, body = server.post("/predict", {"model_id": f"{MODEL}@champion", "document": doc})
        assert status == 200, body
        answers.append(body["model_version"])
    return set(answers)


def test_a_barely_trained_version_is_refused_and_the_service_stays_on_the_champion(ws: EvalWorkspace, server: Server):
    assert champion_versions(server) == {1}
    bad = ws.train("hashBg==", BAD)
    refused = ws.cli("models", "promote", MODEL, bad, "--alias", "champion")
    assert refused.returncode == 1, refused.stderr[-2000:]
    out = refused.json
    assert (out["gate"], out["moved"], out["holder"], out["failed"]) == ("failed", False, "1", ["accuracy >= holder + 0"])
    decision = out["decision"]
    assert decision["candidate"]["metrics"]["accuracy"] < decision["baseline"]["metrics"]["accuracy"]
    assert holder(ws) == "1"
    assert champion_versions(server) == {1}
    tags = ws.client().get_model_version(MODEL, bad).tags
    assert (tags["miniautoml.gate"], tags["miniautoml.gate.baseline_version"]) == ("failed", "1")
    assert tags["miniautoml.gate.evaluation_runs"] == ",".join(
        [decision["candidate"]["evaluation_run_id"], decision["baseline"]["evaluation_run_id"]])
    shown = ws.ok("models", "show", MODEL, bad)
    assert [d["outcome"] for d in shown["gate_decisions"]] == ["failed"]
    assert [e["run_id"] for e in shown["evaluations"]] == [decision["candidate"]["evaluation_run_id"]]


def test_force_moves_the_alias_past_a_refusal_and_records_forced(ws: EvalWorkspace):
    bad = ws.train("hashBg==", BAD)
    forced = ws.ok("models", "promote", MODEL, bad, "--alias", "staging-forced", "--threshold", "accuracy=0.99", "--force")
    assert (forced["gate"], forced["moved"], forced["failed"]) == ("forced", True, ["accuracy >= 0.99"])
    assert holder(ws, "staging-forced") == bad
    assert ws.client().get_model_version(MODEL, bad).tags["miniautoml.gate"] == "forced"


def test_a_better_version_passes_and_the_service_switches_to_it(ws: EvalWorkspace, server: Server):
    better = ws.train("hashBg==", GOOD)
    passed = ws.ok("models", "promote", MODEL, better, "--alias", "champion", "--threshold", "accuracy=0.5")
    assert (passed["gate"], passed["moved"], passed["holder"]) == ("passed", True, "1")
    decision = passed["decision"]
    assert decision["candidate"]["metrics"]["accuracy"] >= decision["baseline"]["metrics"]["accuracy"]
    assert [c["check"] for c in decision["checks"]] == ["accuracy >= 0.5", "accuracy >= holder + 0"]
    wait_until(lambda: champion_versions(server) == {int(better)}, 30, f"the service answering @champion from v{better}",
               interval=0.5)


def test_a_sweeps_alias_goes_through_the_gate_and_stays_when_its_best_trial_is_worse(ws: EvalWorkspace):
    before = holder(ws)
    result = ws.cli("train", "sweep", "--dataset", "intents", "--version-hash", "hashBg==", "--model-name", MODEL,
                    "--trials", "2", "--parallel", "1", "--seed", "1", "--alias", "champion",
                    "-P", "lr=interval(0.00005, 0.0001)", "-P", "epochs=1", timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.json
    assert (out["status"], out["gate"], out["gate_failed"]) == ("FINISHED", "failed", ["accuracy >= holder + 0"])
    assert holder(ws) == before != out["model_version"]
    assert ws.client().get_model_version(MODEL, out["model_version"]).tags["miniautoml.gate"] == "failed"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--threshold", "recall=0.9"], "error: --threshold 'recall': unknown metric"),
        (["--min-delta", "a lot"], "error: --min-delta 'a lot': not a number"),
        (["--metric", "auc"], "error: --metric 'auc': unknown metric"),
    ],
)
def test_bad_gate_options_are_one_line_exit_2_and_move_nothing(ws: EvalWorkspace, args, message):
    before_holder = holder(ws)
    before = len(ws.evaluation_runs())
    result = ws.cli("models", "promote", MODEL, "1", "--alias", "champion", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.error_line.startswith(message)
    assert holder(ws) == before_holder
    assert len(ws.evaluation_runs()) == before


def test_promote_of_an_unknown_version_is_exit_2_and_moves_nothing(ws: EvalWorkspace):
    before_holder = holder(ws)
    result = ws.cli("models", "promote", MODEL, "99", "--alias", "champion")
    assert result.returncode == 2 and result.error_line.startswith(f"error: model '{MODEL}' has no version '99'")
    assert holder(ws) == before_holder


def test_without_a_golden_set_promotion_moves_the_alias_and_says_gate_none(ws: EvalWorkspace):
    other = ws.train("hashAg==", ("-P", "epochs=1"), model="plain")
    out = ws.ok("models", "promote", "plain", other, "--alias", "champion")
    assert (out["gate"], out["moved"], out["decision"]) == ("none", True, None)
