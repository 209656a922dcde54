"""Sign ``private_key_jwt`` client assertions (RFC 7523 §2.2, §3; OpenID Connect Core §9).

The assertion is a JWT signed with the client's private key: ``iss`` and ``sub`` are the
client id, ``aud`` the token endpoint, ``exp`` a minute away and ``jti`` fresh for every
request, since the issuer refuses a replayed ``jti``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

#: RFC 7523 §2.2 ``client_assertion_type``.
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PrivateKey = str | bytes | Mapping[str, Any]


class AssertionSigner:
    """Sign client assertions for one client with one private key."""

    def __init__(
        self,
        client_id: str,
        private_key: PrivateKey,
        *,
        alg: str | None = None,
        kid: str | None = None,
        lifetime: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Load ``private_key``: PEM (PKCS#8 or traditional, unencrypted), or a private JWK.

        ``alg`` defaults to the JWK's ``alg``, else follows the key type: ES256/384/512 by
        curve, RS256 for RSA, EdDSA for Ed25519. ``kid`` defaults to the JWK's ``kid``.
        """
        self.client_id = client_id
        self._key, default_alg, jwk_kid = _load_private_key(private_key)
        self.alg = alg or default_alg
        self.kid = kid or jwk_kid
        self._lifetime = lifetime
        self._clock = clock

    def sign(self, audience: str) -> str:
        """Return a fresh assertion for ``audience`` (the token endpoint URL)."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + int(self._lifetime),
            "jti": secrets.token_urlsafe(24),
        }
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self._key, algorithm=self.alg, headers=headers)


def _load_private_key(key: PrivateKey) -> tuple[Any, str, str | None]:
    """Return (key object, default alg, kid) for a PEM or JWK private key."""
    if isinstance(key, Mapping):
        return _load_jwk(key)
    text = key.decode() if isinstance(key, bytes) else key
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError("the private key is neither PEM nor a JSON JWK") from None
        if not isinstance(data, dict):
            raise ValueError("the private key JSON is not a JWK object")
        return _load_jwk(data)
    try:
        loaded = load_pem_private_key(text.encode(), password=None)
    except (TypeError, ValueError):
        # Say nothing more: the underlying message may quote the key material.
        raise ValueError("the private key is not an unencrypted PEM private key") from None
    if isinstance(loaded, ec.EllipticCurvePrivateKey) and loaded.curve.name in _EC_ALGS:
        return loaded, _EC_ALGS[loaded.curve.name], None
    if isinstance(loaded, rsa.RSAPrivateKey):
        return loaded, "RS256", None
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return loaded, "EdDSA", None
    raise ValueError(f"unsupported private key type {type(loaded).__name__}")


def _load_jwk(data: Mapping[str, Any]) -> tuple[Any, str, str | None]:
    if data.get("kty") not in ("EC", "RSA", "OKP"):
        raise ValueError("the JWK must be an EC, RSA or OKP key (kty)")
    if "d" not in data:
        raise ValueError("the JWK holds no private key (no 'd'); pass the private half")
    try:
        jwk = jwt.PyJWK(dict(data))
    except jwt.PyJWTError:
        # PyJWT's messages can include the whole JWK, private part and all.
        raise ValueError("the JWK is not a usable private key") from None
    kid = data.get("kid")
    return jwk.key, jwk.algorithm_name, kid if isinstance(kid, str) else None
