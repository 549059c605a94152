"""The DVC remote URL, written once (`dvc_remote_url`)."""

from __future__ import annotations

from pathlib import Path

from miniautoml.config import dvc_remote_url, load_settings


# --- the DVC remote ----------------------------------------------------------------------------
def test_the_dvc_remote_is_the_local_directory_without_an_endpoint(tmp_path: Path, monkeypatch) -> None:
    for name in ("MINIAUTOML_S3_ENDPOINT", "MINIO_ENDPOINT", "MINIAUTOML_LOCAL_REMOTE"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(tmp_path)
    assert dvc_remote_url(settings) == str(tmp_path.resolve() / ".miniautoml" / "dvc-remote")


def test_the_dvc_remote_is_under_the_bucket_with_an_endpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MINIAUTOML_S3_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("MINIAUTOML_S3_BUCKET", "mybucket")
    assert dvc_remote_url(load_settings(tmp_path)) == "s3://mybucket/dvc"
