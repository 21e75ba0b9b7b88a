"""Scale-out with uploads in an S3-compatible bucket: the API process and the workers share
no directory, only PostgreSQL and the bucket (a loopback S3 server)."""

from __future__ import annotations

from pathlib import Path

from tests.api.helpers import Api
from tests.scaleout.conftest import Cluster
from tests.support.s3 import s3_server
from tests.support.server import start_worker


def test_workers_read_uploads_from_the_bucket(make_cluster: object, tmp_path: Path) -> None:
    with s3_server() as s3:
        cluster: Cluster = make_cluster(  # type: ignore[operator]
            APEXVERIFY_PARSE_CHUNK_BYTES=str(16 * 1024), **s3.env("cluster")
        )
        server = cluster.add_server()
        for i in range(2):
            # Each worker on its own "machine": its own data and storage directories.
            own = tmp_path / f"machine{i}"
            env = {
                **cluster.env,
                "APEXVERIFY_DATA_DIR": str(own / "var"),
                "APEXVERIFY_STORAGE_DIR": str(own / "storage"),
            }
            cluster.workers.append(start_worker(own, env, 2, f"w{i}"))
        api = Api(server.base_url, server.create_account(sandbox=True)[0])
        lines = [f"valid+{i}@example.com" for i in range(3000)] + ["invalid@example.com"]
        batch_uuid = api.run("\n".join(lines) + "\n")
        assert f"cluster/uploads/{batch_uuid}.txt" in s3.object_keys()
        status = api.status(batch_uuid)
        assert status["stats"]["total_verification"] == 3001, cluster.logs()
        cached = [
            path
            for i in range(2)
            for path in (tmp_path / f"machine{i}" / "var" / "s3-cache").rglob("*.txt")
        ]
        assert cached, "no worker downloaded the upload from the bucket"
        cluster.close()
