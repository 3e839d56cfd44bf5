"""Better Auth-style JWTs for tests and benchmarks: an Ed25519 key pair and a minting helper."""

import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class TokenIssuer:
    def __init__(self, private_key=None, algorithm: str = "EdDSA"):
        self.private_key = private_key or Ed25519PrivateKey.generate()
        self.algorithm = algorithm
        self.issued: list[str] = []  # every token minted, for the check that no log line holds one

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def token(self, user_id: str, *, role: str | None = None, ttl: int = 3600, **claims) -> str:
        now = int(time.time())
        payload = {"sub": user_id, "iat": now, "exp": now + ttl, "jti": str(uuid.uuid4()), **claims}
        if role:
            payload["role"] = role
        token = jwt.encode(payload, self.private_key, algorithm=self.algorithm)
        self.issued.append(token)
        return token
