"""The model server over TLS and mutual TLS, called by the detector's classifier client.

Certificates are the local stack's kind (devtools/stack_security.py: a throwaway CA, a server
certificate for 127.0.0.1 / localhost, a client certificate), made in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import keras
import numpy as np
import pytest
from pydantic import ValidationError

from devtools.stack_security import StackTls, ensure_tls
from runtime.grpc_tls import GrpcClientTls, GrpcServerTls
from workers.detector.classifier import ClassifierError, ClientConfig, GrpcClassifier


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> StackTls:
    return ensure_tls(tmp_path_factory.mktemp("tls"))


def _classify(port: int, tls: GrpcClientTls, tiny: Any) -> np.ndarray:
    config = ClientConfig(
        target=f"127.0.0.1:{port}", model_name="tiny", tls=tls, max_attempts=1, deadline_s=20
    )
    with GrpcClassifier(config, sleep=lambda _s: None) as client:
        return client.classify(tiny.crops(3, seed=1))


def test_classify_over_tls(
    certs: StackTls, tiny_base: Path, tiny: Any, tiny_model: keras.Model, tmp_path: Path
) -> None:
    server_tls = GrpcServerTls(cert_file=certs.server_cert, key_file=certs.server_key)
    with tiny.serve(tiny_base, tls=server_tls) as server:
        got = _classify(server.port, GrpcClientTls(enabled=True, ca_file=certs.ca_file), tiny)
        np.testing.assert_allclose(got, tiny.expected(tiny_model, tiny.crops(3, seed=1)), atol=1e-6)
        with pytest.raises(ClassifierError) as plaintext:
            _classify(server.port, GrpcClientTls(), tiny)
        assert plaintext.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(ClassifierError) as untrusted:
            other_ca = ensure_tls(tmp_path / "other").ca_file
            _classify(server.port, GrpcClientTls(enabled=True, ca_file=other_ca), tiny)
        assert untrusted.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_refuses_a_client_without_a_certificate(
    certs: StackTls, tiny_base: Path, tiny: Any
) -> None:
    server_tls = GrpcServerTls(
        cert_file=certs.server_cert, key_file=certs.server_key, client_ca_file=certs.ca_file
    )
    with tiny.serve(tiny_base, tls=server_tls) as server:
        mutual = GrpcClientTls(
            enabled=True,
            ca_file=certs.ca_file,
            cert_file=certs.client_cert,
            key_file=certs.client_key,
        )
        assert _classify(server.port, mutual, tiny).shape == (3, 2)
        with pytest.raises(ClassifierError) as anonymous:
            _classify(server.port, GrpcClientTls(enabled=True, ca_file=certs.ca_file), tiny)
        assert anonymous.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("model", "given", "problem"),
    [
        (GrpcServerTls, {"cert_file": "s.crt"}, "go together"),
        (GrpcServerTls, {"client_ca_file": "ca.crt"}, "needs cert_file"),
        (GrpcClientTls, {"ca_file": "ca.crt"}, "need enabled=true"),
        (GrpcClientTls, {"enabled": True, "key_file": "c.key"}, "go together"),
    ],
)
def test_inconsistent_tls_settings_are_refused(
    model: type[GrpcServerTls | GrpcClientTls], given: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        model.model_validate(given)
