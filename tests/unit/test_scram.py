"""The SCRAM verifier must be what PostgreSQL and PgBouncer expect (RFC 7677 test vector)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from hastack.spec.secrets import scram_sha256_verifier
from tests.unit.factories import fixed_secrets


def test_verifier_authenticates_the_rfc7677_exchange() -> None:
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    verifier = scram_sha256_verifier("pencil", salt)
    method, rest = verifier.split("$", 1)
    iter_salt, keys = rest.split("$")
    assert method == "SCRAM-SHA-256"
    assert iter_salt == "4096:W22ZaJ0SNY7soEsUEjb6gQ=="
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))

    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = (
        "n=user,r=rOprNGfwEbeRWgbNEkqO,"
        f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        f"c=biws,r={nonce}"
    ).encode()
    # Server side of the RFC's exchange: the client's proof must check against StoredKey...
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    # ...and our ServerKey must produce the RFC's server signature.
    server_sig = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(server_sig).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_role_verifiers_are_stable_and_distinct() -> None:
    secrets = fixed_secrets()
    assert secrets.scram("app", "pw") == secrets.scram("app", "pw")
    assert secrets.scram("app", "pw") != secrets.scram("readonly", "pw")
