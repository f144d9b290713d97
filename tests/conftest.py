"""Settings every test shares. Area-specific fixtures live in each folder's conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> None:
    # This machine exports CA bundles that override `verify=` in requests; tests name their CA.
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "CUCM_RENEW_CONFIG"):
        os.environ.pop(var, None)
    # zeep caches WSDLs under the user's cache folder.
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


def _schemas() -> Path:
    return Path(os.environ.get("CUCM_SCHEMA_DIR", REPO.parent / "shared" / "cisco-schemas"))


class _MissingSchemas(pytest.Item):
    """Stands for every selected fidelity test when Cisco's schemas are absent (under xdist, where a
    worker cannot stop the session): one failure that says what to set."""

    def runtest(self) -> None:
        pytest.fail(self.name, pytrace=False)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, "Cisco's schemas"


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # Without Cisco's schemas every fidelity test would fail alike: stop before any test runs, once.
    needs = [i for i in items if "schema_dir" in getattr(i, "fixturenames", ())]
    path = _schemas()
    if not needs or (path / "serviceability" / "RISService70.wsdl").is_file():
        return
    problem = (
        f"Cisco's schemas are not in {path} ({len(needs)} selected tests use them): set CUCM_SCHEMA_DIR "
        "to the folder holding axl-14.0/, axl-15.0/ and serviceability/"
    )
    if not hasattr(config, "workerinput"):
        raise pytest.UsageError(problem)
    items[:] = [_MissingSchemas.from_parent(session, name=problem)]


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """Cisco's WSDL/XSD files: test data that is never copied into the project (their presence is
    checked once, at collection)."""
    return _schemas()
