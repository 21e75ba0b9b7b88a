"""A real S3-compatible HTTP server on loopback (moto's server mode), for the storage tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3

from tests.support.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "apexverify-test",
    "AWS_SECRET_ACCESS_KEY": "apexverify-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def object_keys(self) -> list[str]:
        listed = self.client().list_objects_v2(Bucket=self.bucket)
        return [item["Key"] for item in listed.get("Contents", [])]

    def env(self, prefix: str = "apexverify") -> dict[str, str]:
        """Server/worker settings that keep uploads in this bucket."""
        return {
            "APEXVERIFY_STORAGE_URL": f"s3://{self.bucket}/{prefix}",
            "APEXVERIFY_S3_ENDPOINT_URL": self.endpoint,
            **CREDENTIALS,
        }


@contextmanager
def s3_server(bucket: str = "apexverify-uploads") -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(endpoint=f"http://127.0.0.1:{port}", bucket=bucket)
        s3.client().create_bucket(Bucket=bucket)
        yield s3
    finally:
        server.stop()
