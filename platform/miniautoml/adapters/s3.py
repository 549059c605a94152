"""S3/MinIO access with the `minio` client: buckets and reachability checks."""

from __future__ import annotations

from urllib.parse import urlparse

from miniautoml.config import StorageSettings
from miniautoml.errors import StorageError


def client(storage: StorageSettings):
    import urllib3
    from minio import Minio

    url = urlparse(storage.endpoint or "")
    # Fail fast: minio's default pool retries for minutes when the server is down.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=60),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        url.netloc,
        access_key=storage.access_key,
        secret_key=storage.secret_key,
        secure=url.scheme == "https",
        region=storage.region,
        http_client=http,
    )


def ensure_bucket(storage: StorageSettings) -> None:
    """Create the bucket if needed; a clear StorageError if the endpoint cannot be reached."""
    from urllib3.exceptions import HTTPError

    from minio.error import MinioException

    s3 = client(storage)
    try:
        if not s3.bucket_exists(storage.bucket):
            s3.make_bucket(storage.bucket)
    except (MinioException, HTTPError, OSError, ValueError) as exc:
        raise StorageError(f"storage {storage.endpoint} bucket {storage.bucket!r} unreachable: {exc}") from None
