"""On any input, the loaders and the pre-flight raise only their documented errors.

* ``engine.definition.load_definitions``: :class:`DefinitionError` (file, line, problem);
* the ``signed_certificate`` validator behind ``submit-cert``: :class:`SubmitRejected`;
* ``workflows.preflight.preflight`` on damaged real bundles: :class:`PreflightError`;
* ``app.config`` on any TOML text or table: :class:`ConfigError`.

CUCM_RENEW_FUZZ_EXAMPLES raises the number of examples for a longer hunt.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import ConfigError, load_config, parse_config
from engine.api import SubmitRejected
from engine.definition import DefinitionError, load_definitions
from workflows import preflight
from workflows.registry import DEFINITIONS_DIR, build_registry
from workflows.steps.signature import signed_certificate

EXAMPLES = int(os.environ.get("CUCM_RENEW_FUZZ_EXAMPLES", "120"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
REGISTRY = build_registry()
CORPUS = Path(__file__).resolve().parents[1] / "data" / "badcerts"
CSR = (CORPUS / "csr" / "pub-tomcat.csr").read_text()
BUNDLES = [(CORPUS / "certs" / n).read_bytes() for n in ("ok-full-chain.pem", "ok-leaf.der", "ok-bundle.p7c")]
TEXTS = [b.decode("latin-1") for b in BUNDLES]
ROOT = x509.load_pem_x509_certificate((CORPUS / "ca" / "root.pem").read_bytes())
NOW = datetime(2026, 6, 1, tzinfo=UTC)

SCHEMA_WORDS = [
    "name", "extends", "abstract", "initial", "final", "params", "skip", "states", "transitions",
    "exclusion", "retry", "step", "wait", "gate", "submit", "validator", "poll", "timeout", "on_timeout",
    "trigger", "source", "dest", "guards", "group", "from", "until", "attempts", "initial", "backoff",
    "cap", "jitter", "next", "done", "paused", "failed", "expiry_check", "check_expiry", "base",
    "sso_off_for_tomcat", "signed_certificate", "5m", "1h", "-1s", "0", "nan",
]  # fmt: skip
words = st.sampled_from(SCHEMA_WORDS) | st.text(max_size=12)
scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | words
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=5),
    max_leaves=25,
)


def _real(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((DEFINITIONS_DIR / f"{name}.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


BASE, TOMCAT = _real("base"), _real("tomcat")


def _load(files: dict[str, str | bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in files.items():
            path = Path(tmp) / name
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text, encoding="utf-8")
        try:
            loaded = load_definitions(Path(tmp), REGISTRY)
        except DefinitionError as exc:
            assert exc.file and str(exc)
        else:
            assert isinstance(loaded, dict)


@SETTINGS
@given(st.binary(max_size=2000))
def test_definition_loader_on_arbitrary_bytes(data: bytes) -> None:
    _load({"fuzz.yaml": data})


@SETTINGS
@given(st.dictionaries(words, values, max_size=8))
def test_definition_loader_on_arbitrary_documents(doc: dict[str, Any]) -> None:
    _load({"base.yaml": yaml.safe_dump(BASE), "fuzz.yaml": yaml.safe_dump(doc, allow_unicode=True)})


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, original: dict[str, Any]) -> dict[str, Any]:
    """The real definition with a few values replaced or removed."""
    doc = json.loads(json.dumps(original))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(values)
    return doc


@SETTINGS
@given(mutated(BASE), mutated(TOMCAT))
def test_definition_loader_on_mutated_real_definitions(base: dict[str, Any], tomcat: dict[str, Any]) -> None:
    _load({"base.yaml": yaml.safe_dump(base), "tomcat.yaml": yaml.safe_dump(tomcat)})


# ---------------------------------------------------------------------- the pre-flight


@SETTINGS
@given(
    st.dictionaries(words, values, max_size=6),
    words,
    values
    | st.fixed_dictionaries({"leaf_pem": words | st.sampled_from([b.decode("latin-1") for b in BUNDLES])}),
)
def test_submit_validator_only_rejects(context: dict[str, Any], key: str, data: Any) -> None:
    try:
        signed_certificate(context, key, data)
    except SubmitRejected as exc:
        assert str(exc)


@SETTINGS
@given(
    st.sampled_from(range(len(BUNDLES))),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 10**6) | st.none(),
)
def test_preflight_on_damaged_real_bundles(which: int, flips: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(BUNDLES[which])
    for offset, value in flips:
        data[offset % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    try:
        result = preflight.preflight("tomcat", CSR, [("f", bytes(data))], trusted_roots=[ROOT], now=NOW)
    except preflight.PreflightError as exc:
        assert "Fix: " in str(exc)
    else:
        assert len(result.fingerprint_sha256) == 64


@SETTINGS
@given(st.lists(st.sampled_from([*BUNDLES, b"", b"-----BEGIN CERTIFICATE-----\n"]), min_size=1, max_size=4),
       st.sampled_from(["tomcat", "ipsec", "CAPF", "CallManager", "TVS", "cup", ""]))  # fmt: skip
def test_preflight_on_any_combination_of_files(files: list[bytes], cert_type: str) -> None:
    try:
        preflight.preflight(
            cert_type, CSR, [(f"f{i}", d) for i, d in enumerate(files)], trusted_roots=[], now=NOW
        )
    except preflight.PreflightError as exc:
        assert str(exc)


# ---------------------------------------------------------------------- the configuration


@SETTINGS
@given(st.dictionaries(words, values, max_size=8))
def test_config_parser_on_arbitrary_tables(raw: dict[str, Any]) -> None:
    try:
        parse_config(raw, Path("/nonexistent/cucm-renew.toml"))
    except ConfigError as exc:
        assert exc.fix and exc.problem


@SETTINGS
@given(st.text(max_size=600) | st.binary(max_size=600).map(lambda b: b.decode("latin-1")))
def test_config_loader_on_arbitrary_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cucm-renew.toml"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load_config(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path))
