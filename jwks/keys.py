"""Signing key pairs for RFC 9068 access tokens: generation, RFC 7638 kid, JWS signing.

ES256 (P-256) is the default; RS256 (RSA 2048) and EdDSA (Ed25519) are available.
The kid is the key's RFC 7638 thumbprint, so it is derived, never chosen.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from .errors import UnsupportedAlgorithm

ALGORITHMS: tuple[str, ...] = ("ES256", "RS256", "EdDSA")
DEFAULT_ALG = "ES256"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# RFC 7638 §3.2: the members that define each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def thumbprint(public_jwk: Mapping[str, str]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public JWK, base64url without padding."""
    members = _THUMBPRINT_MEMBERS.get(public_jwk.get("kty", ""))
    if members is None:
        raise UnsupportedAlgorithm(f"no thumbprint for key type {public_jwk.get('kty')!r}")
    canonical = json.dumps({m: public_jwk[m] for m in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _check_alg(alg: str) -> None:
    if alg not in ALGORITHMS:
        raise UnsupportedAlgorithm(
            f"unsupported algorithm {alg!r}; use one of {', '.join(ALGORITHMS)}"
        )


def _public_members(alg: str, private_key: PrivateKey) -> dict[str, Any]:
    if alg == "ES256" and isinstance(private_key, ec.EllipticCurvePrivateKey):
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise UnsupportedAlgorithm("ES256 needs a P-256 key")
        return ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    if alg == "RS256" and isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < 2048:
            raise UnsupportedAlgorithm("RS256 needs an RSA key of at least 2048 bits")
        return RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    if alg == "EdDSA" and isinstance(private_key, ed25519.Ed25519PrivateKey):
        return OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    raise UnsupportedAlgorithm(f"the key is not a {alg} key")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A private signing key with its kid, algorithm and public JWK."""

    kid: str
    alg: str
    private_key: PrivateKey
    public_jwk: Mapping[str, str]

    def sign(self, claims: Mapping[str, object], *, typ: str) -> str:
        """Return a compact JWS of ``claims`` with header ``alg``, ``kid`` and ``typ``."""
        return jwt.encode(
            dict(claims),
            self.private_key,
            algorithm=self.alg,
            headers={"kid": self.kid, "typ": typ},
        )


def _pair(alg: str, private_key: PrivateKey) -> KeyPair:
    # Keep only the key's defining members: PyJWT adds "key_ops" to RSA keys, and RFC 7517
    # §4.3 says "use" and "key_ops" SHOULD NOT be used together.
    jwk = _public_members(alg, private_key)
    members = {m: str(jwk[m]) for m in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    kid = thumbprint(members)
    public_jwk = {**members, "kid": kid, "alg": alg, "use": "sig"}
    return KeyPair(kid=kid, alg=alg, private_key=private_key, public_jwk=public_jwk)


def generate_key(alg: str = DEFAULT_ALG) -> KeyPair:
    """Generate a new key pair for ``alg``."""
    _check_alg(alg)
    private_key: PrivateKey
    if alg == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif alg == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private_key = ed25519.Ed25519PrivateKey.generate()
    return _pair(alg, private_key)


def private_key_bytes(pair: KeyPair) -> bytes:
    """Return the private key as unencrypted PKCS#8 DER, for the caller to seal."""
    return pair.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_key_pair(alg: str, der: bytes) -> KeyPair:
    """Load a PKCS#8 DER private key for ``alg``, recomputing its kid and public JWK."""
    _check_alg(alg)
    private_key = serialization.load_der_private_key(der, password=None)
    if not isinstance(
        private_key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise UnsupportedAlgorithm(f"the key is not a {alg} key")
    return _pair(alg, private_key)
