"""Runs kafka-python's own integration tests (from its sdist) against a Weir node.

Usage: kafka_python_suite.py SRC_DIR BOOTSTRAP [--only TEST] [pytest args...]

With `--only TEST` (a test's path and name under the sdist) only that test runs; else the whole
integration suite.

The tests are run unmodified, with SASL and SSL deselected (Weir's Kafka listener is plain
TCP). The sdist ships `test/` without its `__init__.py` and `service.py`: Python's own `test`
package would shadow it, so the runner maps the name `test` to the sdist's directory, and it
provides `test.service`, which the fixtures use only to hold an external broker's address.
"""

import os
import sys
import types

import pytest

src, bootstrap, *extra = sys.argv[1:]
os.chdir(src)
sys.path.insert(0, src)
package = types.ModuleType("test")
package.__path__ = [os.path.join(src, "test")]
sys.modules["test"] = package


class ExternalService:
    """A broker the tests did not start: its address, nothing to start or stop."""

    def __init__(self, host, port):
        self.host, self.port = host, port

    def start(self):
        pass

    def stop(self):
        pass

    def dump_logs(self):
        pass

    def wait_for(self, pattern, timeout=30):
        return True


class SpawnedService:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the tests run against an external broker (KAFKA_URI)")


service = types.ModuleType("test.service")
service.ExternalService = ExternalService
service.SpawnedService = SpawnedService
sys.modules["test.service"] = service
os.environ["KAFKA_URI"] = f"kafka://{bootstrap}"
# The suite skips a codec's tests silently when its library is missing: require them all.
import kafka.codec  # noqa: E402

assert kafka.codec.has_snappy() and kafka.codec.has_lz4() and kafka.codec.has_zstd(), "codec libraries missing"
# The fixtures check that a Kafka distribution is there even when they do not start it.
os.environ.setdefault("KAFKA_ROOT", os.path.join(src, "test"))
# The Kafka release whose protocol the tests expect; versions are negotiated with ApiVersions.
os.environ.setdefault("KAFKA_VERSION", "4.0.0")
targets = ["test/integration"]
if extra[:1] == ["--only"]:
    targets, extra = [extra[1]], extra[2:]
args = [
    *targets,
    "-q",
    "-p",
    "no:cacheprovider",
    "--timeout=120",
    "--deselect",
    "test/integration/test_sasl_integration.py",
    "--deselect",
    "test/integration/test_ssl_integration.py",
    *extra,
]
sys.exit(pytest.main(args))
