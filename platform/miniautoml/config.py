"""Workspace and storage settings, resolved in one place.

Every `[section] key` of `miniautoml.toml` is a `Setting` (its environment variables, its
default) resolved by `resolve`: a value set in this process (`Settings.with_value`) >
environment > `<workspace>/miniautoml.toml` > (for storage) the DVC remote the workspace's
committed `.dvc/config` names, what a git clone knows > default. Keys are read from the
environment only; they are written to DVC's `--local` config, never to git.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from miniautoml.errors import UserInputError

# The source checkout (editable install): holds MLproject, training_code/, bentos/, params/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = "miniautoml.toml"
LOCAL_REMOTE_ENV = "MINIAUTOML_LOCAL_REMOTE"
DVC_CACHE_ENV = "MINIAUTOML_DVC_CACHE_DIR"
STATE_DIR = ".miniautoml"  # git-ignored: MLflow DB, artifacts, BentoML store, locks, local remote


@dataclass(frozen=True)
class Setting:
    """One `[section] key` of miniautoml.toml, the environment variables that set it (first
    wins) and its default."""

    section: str
    key: str
    env: tuple[str, ...] = ()
    default: Any = None

    @property
    def where(self) -> str:
        return f"{CONFIG_FILE} [{self.section}] {self.key}"


@dataclass(frozen=True)
class Resolved:
    """A setting's value and where it came from (for an error line naming what to fix)."""

    value: Any
    source: str  # an environment variable, `miniautoml.toml [section] key`, "set here" or "default"


def resolve(
    setting: Setting, conf: Mapping[str, Any], values: Mapping[Setting, Any] | None = None
) -> Resolved:
    """`setting`'s value: one set in this process (`values`), else its environment variable,
    else `conf` (the parsed miniautoml.toml), else its default. Empty variables are unset."""
    if values and setting in values:
        return Resolved(values[setting], "set here")
    for name in setting.env:
        if os.environ.get(name):
            return Resolved(os.environ[name], name)
    section = conf.get(setting.section)
    if isinstance(section, Mapping) and section.get(setting.key) not in (None, ""):
        return Resolved(section[setting.key], setting.where)
    return Resolved(setting.default, "default")


# The settings `load_settings` resolves; other modules declare theirs (jobs/slots.py, jobs/backends.py).
S3_ENDPOINT = Setting("storage", "endpoint", ("MINIAUTOML_S3_ENDPOINT", "MINIO_ENDPOINT"))
S3_BUCKET = Setting("storage", "bucket", ("MINIAUTOML_S3_BUCKET", "MINIO_BUCKET"), "miniautoml")
S3_REGION = Setting("storage", "region", ("AWS_DEFAULT_REGION",), "us-east-1")
TRACKING_URI = Setting("mlflow", "tracking_uri", ("MLFLOW_TRACKING_URI",))
ARTIFACT_ROOT = Setting("mlflow", "artifact_root")
BENTOML_HOME = Setting("bentoml", "home", ("BENTOML_HOME",))


@dataclass(frozen=True)
class StorageSettings:
    """Where bytes live. `endpoint is None` means the embedded default: a local DVC remote."""

    endpoint: str | None = None
    bucket: str = "miniautoml"
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    region: str = "us-east-1"

    @property
    def is_s3(self) -> bool:
        return self.endpoint is not None

    def s3_env(self) -> dict[str, str]:
        """Environment for boto-based clients (DVC, MLflow artifacts) talking to this endpoint."""
        if not self.is_s3:
            return {}
        env = {"MLFLOW_S3_ENDPOINT_URL": self.endpoint or "", "AWS_DEFAULT_REGION": self.region}
        if self.access_key:
            env["AWS_ACCESS_KEY_ID"] = self.access_key
        if self.secret_key:
            env["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return env


@dataclass(frozen=True)
class Settings:
    workspace: Path
    storage: StorageSettings
    tracking_uri: str
    # None: an MLflow server decides (its --artifacts-destination), so clients on other machines
    # never write to a path that only this machine has.
    artifact_root: str | None
    bentoml_home: Path
    # The embedded DVC remote directory when it is not this workspace's own: a Ray job's copy of the
    # workspace on this machine reads the submitter's (MINIAUTOML_LOCAL_REMOTE, jobs/shipping.py),
    # a git clone the one its committed `.dvc/config` names (the original workspace's).
    remote_dir: Path | None = None
    # DVC's cache when not the workspace's own `.dvc/cache`: a Ray node's jobs share one
    # (MINIAUTOML_DVC_CACHE_DIR), so that a snapshot is downloaded once per node, not once per job.
    dvc_cache_dir: Path | None = None
    # Settings given a value in this process (`with_value`): they beat the environment and the
    # file here, and reach child processes through `tool_env()`, never through os.environ.
    values: tuple[tuple[Setting, Any], ...] = ()

    def with_value(self, setting: Setting, value: Any) -> "Settings":
        """These settings with `setting` set to `value` (for this process and its children)."""
        kept = tuple((s, v) for s, v in self.values if s != setting)
        return replace(self, values=(*kept, (setting, value)))

    def get(self, setting: Setting) -> Resolved:
        """`setting` for this workspace, read now (a runner sees an edited miniautoml.toml)."""
        return resolve(setting, file_settings(self.workspace), dict(self.values))

    @property
    def state_dir(self) -> Path:
        return self.workspace / STATE_DIR

    @property
    def local_remote(self) -> Path:
        return self.remote_dir or self.state_dir / "dvc-remote"

    def tool_env(self) -> dict[str, str]:
        """Environment for child processes (mlflow run, bentoml serve, dvc) of this workspace."""
        env = {
            "MINIAUTOML_WORKSPACE": str(self.workspace),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "BENTOML_HOME": str(self.bentoml_home),
        }
        env.update(self.storage.s3_env())
        env.update({setting.env[0]: str(value) for setting, value in self.values if setting.env})
        return env


DVC_PREFIX = "dvc"  # DVC's objects under the bucket, beside MLflow's `mlflow/`


def s3_dvc_url(bucket: str) -> str:
    """The DVC remote in S3 bucket `bucket`."""
    return f"s3://{bucket}/{DVC_PREFIX}"


def dvc_remote_url(settings: Settings) -> str:
    """The workspace's DVC remote, as DVC's config names it: `s3://<bucket>/dvc` with an S3
    endpoint, else the embedded local remote directory (a path)."""
    return s3_dvc_url(settings.storage.bucket) if settings.storage.is_s3 else str(settings.local_remote)


def find_workspace(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The workspace: explicit dir, else $MINIAUTOML_WORKSPACE, else the current git checkout."""
    chosen = explicit or os.environ.get("MINIAUTOML_WORKSPACE")
    if chosen:
        return Path(chosen).expanduser().resolve()
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return Path(top).resolve()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return Path.cwd().resolve()


WORKSPACE_MARKERS = (STATE_DIR, ".dvc", CONFIG_FILE)  # any one of them makes a directory a workspace


def is_workspace(path: Path) -> bool:
    """A directory holding the platform's state dir, a DVC repository or a miniautoml.toml."""
    return path.is_dir() and any((path / marker).exists() for marker in WORKSPACE_MARKERS)


def _is_empty_dir(path: Path) -> bool:
    try:
        return not any(path.iterdir())
    except OSError:
        return False


def require_workspace(workspace: Path, named_by: str | None = None, initialise: bool = False) -> None:
    """Refuse to act outside a workspace, before anything is read or created there.

    `named_by` says how the user chose the directory (`-w`, `MINIAUTOML_WORKSPACE`), None when it
    was found (the git checkout or the current directory). An existing empty directory the user
    named is a new workspace, made on first use; with `initialise` (`dataset create`, which
    initialises its workspace) any existing directory is. A missing directory never is: only
    `init` (and `lab`, `up`) create one.
    """
    if is_workspace(workspace):
        return
    where = f"{workspace} ({named_by})" if named_by else str(workspace)
    if not workspace.exists():
        raise UserInputError(f"workspace {where}: no such directory; make one with `miniautoml init {workspace}`")
    if not workspace.is_dir():
        raise UserInputError(f"workspace {where}: not a directory")
    if initialise or (named_by and _is_empty_dir(workspace)):
        return
    markers = f"{STATE_DIR}/, .dvc/ or {CONFIG_FILE}"
    if named_by:
        raise UserInputError(
            f"workspace {where}: not a miniautoml workspace (no {markers}); "
            f"make it one with `miniautoml init {workspace}`"
        )
    raise UserInputError(
        f"not in a miniautoml workspace: {where} has no {markers}; "
        "pass -w DIR or set MINIAUTOML_WORKSPACE, or make one with `miniautoml init`"
    )


def file_settings(workspace: Path) -> dict:
    """The workspace's `miniautoml.toml` as a dict ({} when absent)."""
    path = workspace / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: not valid TOML: {exc}") from None


def _env(*names: str) -> str | None:
    """The first non-empty variable of `names`: the S3 keys, which never come from the file."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


DVC_REMOTE = "storage"  # the DVC remote of every workspace (`core.remote`)


def committed_remote(workspace: Path) -> dict[str, str]:
    """The DVC remote as the workspace's committed `.dvc/config` names it (url, endpointurl,
    region; {} when none): where a git clone's bytes live, with no MiniAutoML settings at all."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(workspace / ".dvc" / "config", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}  # DVC itself reports a broken config when it reads it
    section = f"'remote \"{DVC_REMOTE}\"'"
    if not parser.has_section(section):
        return {}
    return {key: value.strip().strip('"') for key, value in parser[section].items()}


def owns_remote(workspace: Path) -> bool:
    """Whether the workspace has chosen its storage itself: it has its embedded remote directory
    (made whenever storage is set, S3 or not). One that has not (a fresh git clone) follows the
    remote its committed `.dvc/config` names; one that has goes back to its embedded remote when
    the endpoint is dropped (e.g. by `down` after `up --s3`)."""
    return (workspace / STATE_DIR / "dvc-remote").is_dir()


def _committed_s3(remote: dict[str, str]) -> tuple[str | None, str | None]:
    """(endpoint, bucket) of a committed `s3://BUCKET/...` remote, else (None, None)."""
    url = remote.get("url", "")
    if not url.startswith("s3://") or not remote.get("endpointurl"):
        return None, None
    return remote["endpointurl"], url.removeprefix("s3://").split("/", 1)[0] or None


def _committed_local_remote(ws: Path, remote: dict[str, str]) -> Path | None:
    """The committed local-directory remote when it is another workspace's (this one is a clone:
    it has no embedded remote of its own), so the clone reads the bytes its commits name."""
    url = remote.get("url", "")
    if not url or "://" in url:
        return None
    path = Path(url) if Path(url).is_absolute() else (ws / ".dvc" / url)  # DVC: relative to .dvc/
    return None if path.resolve() == (ws / STATE_DIR / "dvc-remote").resolve() else path


def load_settings(workspace: str | os.PathLike[str] | None = None) -> Settings:
    ws = find_workspace(workspace)
    conf = file_settings(ws)
    remote = {} if owns_remote(ws) else committed_remote(ws)
    committed_endpoint, committed_bucket = _committed_s3(remote)

    def value(setting: Setting, committed: Any = None) -> Any:
        """The setting; where only its default would answer, what `.dvc/config` says (if anything)."""
        found = resolve(setting, conf)
        return committed if committed and found.source == "default" else found.value

    endpoint = value(S3_ENDPOINT, committed_endpoint)
    if endpoint and "://" not in endpoint:
        endpoint = "http://" + endpoint  # MinIO users often give host:port
    storage = StorageSettings(
        endpoint=endpoint or None,
        bucket=value(S3_BUCKET, committed_bucket),
        access_key=_env("AWS_ACCESS_KEY_ID", "MINIO_ACCESS_KEY", "MINIO_ROOT_USER"),
        secret_key=_env("AWS_SECRET_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_ROOT_PASSWORD"),
        region=value(S3_REGION, remote.get("region")),
    )
    remote_dir = Path(local) if (local := _env(LOCAL_REMOTE_ENV)) else None
    if remote_dir is None and not storage.is_s3:
        remote_dir = _committed_local_remote(ws, remote)
    state = ws / STATE_DIR
    tracking_uri = value(TRACKING_URI) or f"sqlite:///{state / 'mlflow.db'}"
    if value(ARTIFACT_ROOT):
        artifact_root = value(ARTIFACT_ROOT)
    elif storage.is_s3:
        artifact_root = f"s3://{storage.bucket}/mlflow"
    elif tracking_uri.startswith(("http://", "https://")):
        artifact_root = None
    else:
        artifact_root = (state / "mlartifacts").as_uri()
    return Settings(
        workspace=ws,
        storage=storage,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        bentoml_home=Path(value(BENTOML_HOME) or state / "bentoml"),
        remote_dir=remote_dir,
        dvc_cache_dir=Path(cache) if (cache := _env(DVC_CACHE_ENV)) else None,
    )
