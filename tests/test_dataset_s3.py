"""Dataset commits on a real S3-protocol server (moto_server, or minio when installed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli, start_s3_server


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "a.csv"
    a.write_text("hello,greet\nbye,bye\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("thanks,thank\n", encoding="utf-8")
    return a, b


def objects(endpoint: str, bucket: str) -> list[str]:
    from minio import Minio

    client = Minio(endpoint.removeprefix("http://"), access_key="testing", secret_key="testing-secret", secure=False)
    return [o.object_name for o in client.list_objects(bucket, recursive=True)]


def test_commits_and_snapshots_land_in_the_bucket(cli, s3_server, data):
    env = s3_server.env()
    out = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env)
    assert out.returncode == 0, out.stderr
    cli("dataset", "update", "intents", "--file", str(data[1]), env=env)
    snap = cli("dataset", "fetch", "intents", "hashBg==", env=env).json
    assert snap["source"].startswith(f"s3://{env['MINIAUTOML_S3_BUCKET']}/dvc/files/md5/")
    keys = objects(s3_server.endpoint, env["MINIAUTOML_S3_BUCKET"])
    md5 = snap["dvc_md5"]
    assert f"dvc/files/md5/{md5[:2]}/{md5[2:]}" in keys
    assert len(keys) >= 6  # 3 directory manifests + their files


def test_keys_stay_out_of_git(cli, workspace, s3_server, data):
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=s3_server.env())
    tracked = subprocess.run(["git", "-C", str(workspace), "grep", "-l", "testing-secret"], capture_output=True, text=True)
    assert tracked.stdout == ""
    assert "testing-secret" in (workspace / ".dvc" / "config.local").read_text()


def test_config_local_holds_the_keys_readable_by_its_owner_only(cli, workspace, s3_server, data):
    env = s3_server.env()
    assert cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env).returncode == 0
    local = workspace / ".dvc" / "config.local"
    assert local.stat().st_mode & 0o777 == 0o600
    text = local.read_text()
    assert "testing-secret" in text and "access_key_id = testing" in text
    assert "testing-secret" not in (workspace / ".dvc" / "config").read_text()
    assert not list((workspace / ".dvc").glob(".config.local.*"))  # no temporary file left behind
    local.chmod(0o644)  # a config.local of before: the next write makes it private again
    assert cli("dataset", "update", "intents", "--file", str(data[1]), env=env).returncode == 0
    assert local.stat().st_mode & 0o777 == 0o600
    assert "testing-secret" in local.read_text()


def test_fresh_clone_pulls_a_commit_from_s3(cli, workspace, tmp_path, s3_server, data):
    env = s3_server.env()
    created = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env).json
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(workspace), str(clone)], check=True)
    assert run_cli(clone, "init", env=env).returncode == 0  # writes the clone's local remote config
    dvc = str(Path(subprocess.sys.executable).parent / "dvc")
    pulled = subprocess.run([dvc, "pull", created["commits"][0]["path"] + ".dvc"], cwd=clone, capture_output=True, text=True, env={**__import__("os").environ, **env})
    assert pulled.returncode == 0, pulled.stderr
    assert (clone / created["commits"][0]["path"] / "examples.csv").read_text() == data[0].read_text()


def keys_only(env: dict[str, str]) -> dict[str, str]:
    """What a user with access to the remote has on another machine: the keys, no MiniAutoML settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MINIAUTOML_", "MINIO_", "AWS_"))}
    return {**base, "AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"]}


def test_the_remotes_url_is_committed_and_only_the_keys_stay_local(cli, workspace, s3_server, data):
    env = s3_server.env()
    assert cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env).returncode == 0
    committed = subprocess.run(["git", "-C", str(workspace), "show", "HEAD:.dvc/config"],
                               capture_output=True, text=True, check=True).stdout
    assert f"url = s3://{env['MINIAUTOML_S3_BUCKET']}/dvc" in committed
    assert f"endpointurl = {env['MINIAUTOML_S3_ENDPOINT']}" in committed
    local = (workspace / ".dvc" / "config.local").read_text()
    assert "secret_access_key = testing-secret" in local and "url = " not in local
    assert subprocess.run(["git", "-C", str(workspace), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""


def test_a_plain_git_clone_gets_the_same_bytes_with_dvc_pull(cli, workspace, tmp_path, s3_server, data):
    """`git clone` + `dvc pull` with the keys in the environment, nothing else: DVC's own workflow."""
    env = s3_server.env()
    created = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env).json
    cli("dataset", "prepare", "intents", env=env)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(workspace), str(clone)], check=True)
    dvc = str(Path(sys.executable).parent / "dvc")
    pulled = subprocess.run([dvc, "pull"], cwd=clone, capture_output=True, text=True, env=keys_only(env))
    assert pulled.returncode == 0, pulled.stderr
    commit = created["commits"][0]["path"]
    assert (clone / commit / "examples.csv").read_bytes() == (workspace / commit / "examples.csv").read_bytes()


def test_a_plain_git_clone_fetches_a_snapshot_with_only_the_keys(cli, workspace, tmp_path, s3_server, data):
    """`dataset fetch` in a clone reads the committed remote (no endpoint set) and leaves the checkout clean."""
    env = s3_server.env()
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env)
    vhash = cli("dataset", "prepare", "intents", env=env).json["version_hash"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(workspace), str(clone)], check=True)
    snap = subprocess.run([str(Path(sys.executable).parent / "miniautoml"), "-w", str(clone), "dataset", "fetch",
                           "intents", vhash], capture_output=True, text=True, env=keys_only(env))
    assert snap.returncode == 0, snap.stderr
    fetched = json.loads(snap.stdout)
    assert (Path(fetched["root"]) / "examples.csv").read_text() == "hello,greet\nbye,bye\n"
    assert fetched["source"].startswith(f"s3://{env['MINIAUTOML_S3_BUCKET']}/dvc/")
    assert subprocess.run(["git", "-C", str(clone), "status", "--porcelain"], capture_output=True,
                          text=True).stdout == ""


def test_the_workspace_that_set_its_storage_goes_back_to_its_embedded_remote_without_it(
        cli, workspace, s3_server, data, monkeypatch):
    """Only a clone follows the committed remote: the original dropping its endpoint (as `down`
    does after `up --s3`) is back on `.miniautoml/dvc-remote`, not on the S3 server it stopped."""
    from miniautoml.config import load_settings

    assert cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]),
               env=s3_server.env()).returncode == 0
    for name in ("MINIAUTOML_S3_ENDPOINT", "MINIO_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(workspace)
    assert not settings.storage.is_s3 and settings.local_remote == workspace / ".miniautoml" / "dvc-remote"


def test_fresh_clone_fetches_snapshot_through_the_service(cli, workspace, tmp_path, s3_server, data):
    env = s3_server.env()
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env)
    vhash = cli("dataset", "prepare", "intents", env=env).json["version_hash"]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(workspace), str(clone)], check=True)
    snap = run_cli(clone, "dataset", "fetch", "intents", vhash, env=env)
    assert snap.returncode == 0, snap.stderr
    assert (Path(snap.json["root"]) / "examples.csv").read_text() == "hello,greet\nbye,bye\n"


def test_clones_sharing_a_dvc_cache_download_a_snapshot_once(cli, workspace, tmp_path, s3_server, data):
    """MINIAUTOML_DVC_CACHE_DIR (what a Ray node's jobs share): the second clone's fetch finds the
    snapshot in the shared cache, so it succeeds with the bucket emptied after the first."""
    from minio import Minio

    env = s3_server.env()
    cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env)
    vhash = cli("dataset", "prepare", "intents", env=env).json["version_hash"]
    shared = {**env, "MINIAUTOML_DVC_CACHE_DIR": str(tmp_path / "node-cache")}
    fetched = []
    for name in ("first", "second"):
        clone = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(workspace), str(clone)], check=True)
        snap = run_cli(clone, "dataset", "fetch", "intents", vhash, env=shared)
        assert snap.returncode == 0, snap.stderr
        fetched.append((Path(snap.json["root"]) / "examples.csv").read_text())
        if name == "first":
            client = Minio(s3_server.endpoint.removeprefix("http://"), access_key="testing",
                           secret_key="testing-secret", secure=False)
            for key in objects(s3_server.endpoint, env["MINIAUTOML_S3_BUCKET"]):
                client.remove_object(env["MINIAUTOML_S3_BUCKET"], key)
    assert fetched == ["hello,greet\nbye,bye\n"] * 2
    assert not (tmp_path / "second" / ".dvc" / "cache").exists()


def test_storage_outage_records_nothing_and_the_retry_succeeds(cli, workspace, tmp_path, data):
    server = start_s3_server(tmp_path)
    env = server.env(bucket="outage")
    try:
        assert cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env).returncode == 0
        server.stop()
        failed = cli("dataset", "update", "intents", "--file", str(data[1]), env=env)
        assert failed.returncode == 3
        assert "storage" in failed.error_line and "Traceback" not in failed.stderr
        assert len(cli("dataset", "show", "intents").json["commits"]) == 1
        assert subprocess.run(["git", "-C", str(workspace), "status", "--porcelain"], capture_output=True, text=True).stdout == ""
        server = start_s3_server(tmp_path, port=server.port)
        retried = cli("dataset", "update", "intents", "--file", str(data[1]), env=env)
        assert retried.returncode == 0, retried.stderr
        assert [c["commit_id"] for c in retried.json["commits"]] == ["1", "2"]
    finally:
        server.stop()


def test_storage_outage_on_create_leaves_no_dataset(cli, tmp_path, data):
    server = start_s3_server(tmp_path)
    env = server.env(bucket="down")
    server.stop()
    failed = cli("dataset", "create", "intents", "--type", "TEXT_INTENT", "--file", str(data[0]), env=env)
    assert failed.returncode == 3 and "unreachable" in failed.error_line
    assert cli("dataset", "list").json == []
