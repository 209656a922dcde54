"""A stand-in external OIDC issuer, run as its own process: ``python -m tests.oidc_issuer``.

It plays GitHub Actions, GitLab CI, a Kubernetes API server or a SPIFFE (SPIRE) server:
it serves an OIDC discovery document and a JWK Set on 127.0.0.1, and mints tokens with
each platform's claims when asked, signed with its own ES256 key, which never leaves the
process. It can also forge the tokens an attacker would (``alg: none``, HMAC keyed by the
public key) and rotate its key. The first line it prints is its base URL.

    POST /mint    {"profile": "github", "repository": "org/repo", "ref": "refs/heads/main",
                   "aud": "...", "lifetime": 300, "issued_ago": 0, "forge": "none"}
    POST /rotate  a new key (new kid) replaces the current one in the JWK Set
    GET  /stats   {"jwks_fetches": N, "discovery_fetches": N}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """The issuer's state: its key, its URL, and how often its documents were fetched."""

    def __init__(self) -> None:
        self.base = ""
        self.lock = threading.Lock()
        self.stats = {"jwks_fetches": 0, "discovery_fetches": 0}
        self.rotate()

    def rotate(self) -> None:
        """Replace the signing key by a new one with a new kid."""
        self.key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        self.kid = "k-" + secrets.token_hex(6)
        self.jwk = {**jwk, "kid": self.kid, "alg": "ES256", "use": "sig"}

    def claims(self, order: dict[str, Any]) -> dict[str, Any]:
        """Return the claims of a token of ``order["profile"]``, as that platform shapes them."""
        now = int(time.time()) - int(order.get("issued_ago", 0))
        profile = order.get("profile", "github")
        claims: dict[str, Any] = {
            "iss": self.base,
            "aud": order.get("aud"),
            "iat": now,
            "nbf": now,
            "exp": now + int(order.get("lifetime", 300)),
            "jti": secrets.token_hex(16),
        }
        if profile == "github":
            repo, ref = order.get("repository", "acme/api"), order.get("ref", "refs/heads/main")
            environment = order.get("environment")
            claims |= {
                "sub": f"repo:{repo}:environment:{environment}"
                if environment
                else f"repo:{repo}:ref:{ref}",
                "repository": repo,
                "repository_owner": repo.split("/")[0],
                "ref": ref,
                "ref_type": "branch",
                "workflow": "deploy",
                "event_name": "push",
                "runner_environment": "github-hosted",
            }
            if environment:
                claims["environment"] = environment
        elif profile == "gitlab":
            path, ref = order.get("project_path", "group/project"), order.get("ref", "main")
            claims |= {
                "sub": f"project_path:{path}:ref_type:branch:ref:{ref}",
                "project_path": path,
                "namespace_path": path.split("/")[0],
                "ref": ref,
                "ref_type": "branch",
                "ref_protected": "true" if order.get("protected", True) else "false",
                "pipeline_source": "push",
            }
        elif profile == "kubernetes":
            namespace, name = order.get("namespace", "prod"), order.get("name", "billing")
            claims |= {
                "sub": f"system:serviceaccount:{namespace}:{name}",
                "kubernetes.io": {
                    "namespace": namespace,
                    "serviceaccount": {"name": name, "uid": secrets.token_hex(8)},
                    "pod": {"name": f"{name}-7c9d", "uid": secrets.token_hex(8)},
                },
            }
        elif profile == "spiffe":
            # JWT-SVIDs need sub, aud and exp; SPIRE sends no jti.
            domain, path = (
                order.get("trust_domain", "example.org"),
                order.get("path", "/ns/prod/sa/billing"),
            )
            claims["sub"] = f"spiffe://{domain}{path}"
            del claims["jti"], claims["nbf"]
        if claims["aud"] is None:
            del claims["aud"]
        return claims

    def mint(self, order: dict[str, Any]) -> str:
        """Return a token for ``order``: signed, or forged as ``order["forge"]`` says."""
        claims = self.claims(order)
        forge = order.get("forge")
        if forge is None:
            return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
        alg = {"none": "none", "hmac-public": "HS256"}[forge]
        header = {"alg": alg, "typ": "JWT", "kid": self.kid}
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        if forge == "none":
            return signing_input + "."
        # The attack of RFC 8725 §2.1: HMAC keyed by the (public) verification key's PEM.
        public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"


def main() -> None:
    """Serve until stdin closes (the test process ended)."""
    issuer = Issuer()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            with issuer.lock:
                if self.path == "/.well-known/openid-configuration":
                    issuer.stats["discovery_fetches"] += 1
                    document: Any = {
                        "issuer": issuer.base,
                        "jwks_uri": issuer.base + "/jwks",
                        "id_token_signing_alg_values_supported": ["ES256"],
                    }
                elif self.path == "/jwks":
                    issuer.stats["jwks_fetches"] += 1
                    document = {"keys": [issuer.jwk]}
                elif self.path == "/stats":
                    document = issuer.stats
                else:
                    self._send(404, b"{}", "application/json")
                    return
            body = json.dumps(document).encode()
            self._send(200, body, "application/json", Cache_Control="max-age=300")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", "0"))
            order = json.loads(self.rfile.read(length) or b"{}")
            with issuer.lock:
                if self.path == "/mint":
                    self._send(200, issuer.mint(order).encode(), "application/jwt")
                elif self.path == "/rotate":
                    issuer.rotate()
                    self._send(200, json.dumps({"kid": issuer.kid}).encode(), "application/json")
                else:
                    self._send(404, b"{}", "application/json")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    issuer.base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(issuer.base, flush=True)
    sys.stdin.read()  # ends when the test closes our stdin (or dies)
    server.shutdown()


if __name__ == "__main__":
    main()
