"""Settings, identities and a local JWKS endpoint for the auth and HTTP-protection tests."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.settings import ServiceSettings

DEV_SECRET = "a-dev-secret-only-these-tests-know-0123456789"
IDP_ISSUER = "https://idp.example.test/realms/mentorloom"
AUDIENCE = "mentorloom-api"


def dev_settings(**overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "auth_mode": "dev",
        "auth_dev_secret": DEV_SECRET,
        "auth_issuer": "mentorloom-dev",
        "auth_audience": AUDIENCE,
        "service_name": "testsvc",
    }
    return ServiceSettings(**(values | overrides))


@pytest.fixture
def settings() -> ServiceSettings:
    return dev_settings()


@pytest.fixture
def tenant() -> uuid.UUID:
    return uuid.uuid4()


@dataclass
class JwksServer:
    """An identity provider's JWKS endpoint on 127.0.0.1, counting how often it is fetched."""

    url: str
    private_key: rsa.RSAPrivateKey
    kid: str
    fetches: list[str] = field(default_factory=list)

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, key: rsa.RSAPrivateKey | None = None) -> str:
        return jwt.encode(claims, key or self.private_key, algorithm="RS256", headers={"kid": kid or self.kid})


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[JwksServer]:
    kid = f"key-{uuid.uuid4().hex[:8]}"
    public_jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    document = json.dumps({"keys": [public_jwk | {"kid": kid, "use": "sig", "alg": "RS256"}]}).encode()
    fetches: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        yield JwksServer(f"http://127.0.0.1:{port}/certs", rsa_key, kid, fetches)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def jwks_settings(url: str, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "auth_mode": "jwks",
        "auth_jwks_url": url,
        "auth_issuer": IDP_ISSUER,
        "auth_audience": AUDIENCE,
        "service_name": "testsvc",
    }
    return ServiceSettings(**(values | overrides))
