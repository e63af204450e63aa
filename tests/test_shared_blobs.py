"""Several nodes share one PostgreSQL but not their disks: blobs on local disk are flagged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.test_daemon import free_port
from tests.test_startup import environment, error_line, serve_fails
from trunkline.config import settings_from
from trunkline.daemon import StartupError, check_shared_blobs


def test_serve_refuses_postgresql_with_local_blobs_when_shared_blobs_are_required(
    tmp_path: Path,
) -> None:
    url = f"postgresql://trunkline@127.0.0.1:{free_port()}/trunkline"  # nothing listens there
    required = environment(
        tmp_path, TRUNKLINE_DATABASE_URL=url, TRUNKLINE_REQUIRE_SHARED_BLOBS="true"
    )
    line = error_line(serve_fails(required))
    assert "other nodes cannot serve them" in line and "TRUNKLINE_S3_BUCKET" in line
    # With a bucket the check passes, and start-up goes on to the database (unreachable here).
    with_bucket = {**required, "TRUNKLINE_S3_BUCKET": "recordings"}
    assert "cannot reach PostgreSQL" in error_line(serve_fails(with_bucket))


def test_local_blobs_on_postgresql_are_a_warning_and_on_sqlite_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trunkline.daemon")
    check_shared_blobs(settings_from({"data_dir": tmp_path}))
    assert caplog.records == []
    shared = settings_from({"data_dir": tmp_path, "database_url": "postgresql://db/trunkline"})
    check_shared_blobs(shared)
    (warning,) = caplog.records
    assert "TRUNKLINE_S3_BUCKET" in warning.getMessage()
    caplog.clear()
    check_shared_blobs(
        settings_from({"data_dir": tmp_path, "database_url": "postgresql://db/x", "s3_bucket": "b"})
    )
    assert caplog.records == []
    with pytest.raises(StartupError):
        check_shared_blobs(
            settings_from(
                {
                    "data_dir": tmp_path,
                    "database_url": "postgresql://db/x",
                    "require_shared_blobs": True,
                }
            )  # fmt: skip
        )
