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


@pytest.fixture(scope="session")
def schema_dir() -> Path:
    """Cisco's WSDL/XSD files: test data that is never copied into the project."""
    path = Path(os.environ.get("CUCM_SCHEMA_DIR", REPO.parent / "shared" / "cisco-schemas"))
    if not (path / "serviceability" / "RISService70.wsdl").is_file():
        pytest.fail(f"Cisco schemas not found in {path}: set CUCM_SCHEMA_DIR to the cisco-schemas folder")
    return path
