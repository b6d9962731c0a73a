"""Fixtures for otlpd's integration tests.

The binary under test comes from $OTLPD_BINARY (`make integration` sets it to
.build/release/otlpd). Each test starts its own daemon(s) on OS-chosen ports
in a temp dir:

    def test_x(otlpd, tmp_path):
        d = otlpd.start(base_config(tmp_path))
        ... d.grpc_port, d.http_port, d.dir, d.stdout(), d.stderr(), d.log_lines()
        assert d.stop(signal.SIGTERM) == 0
"""
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from otlpd_harness import OtlpdFactory  # noqa: E402


@pytest.fixture(scope="session")
def otlpd_binary() -> str:
    binary = os.environ.get("OTLPD_BINARY")
    if not binary:
        pytest.fail("set OTLPD_BINARY to the otlpd binary under test (make integration does)", pytrace=False)
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        pytest.fail(f"OTLPD_BINARY={binary} is not an executable file", pytrace=False)
    return binary


@pytest.fixture
def otlpd(otlpd_binary, tmp_path):
    """A factory: otlpd.start(config_dict_or_yaml, args=[...], env={...}) -> a running Otlpd.
    Every daemon still running at the end of the test is stopped with SIGTERM."""
    factory = OtlpdFactory(otlpd_binary, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def tools():
    """External clients the suite drives otlpd with; a missing one is an error, not a skip."""
    missing = [t for t in ("curl", "h2load", "openssl", "zstd", "zcat", "gzip", "grep") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing tools: {', '.join(missing)} (apt: curl nghttp2-client openssl zstd gzip)", pytrace=False)
    return True
