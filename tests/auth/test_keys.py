"""Parsing JWKS documents: only public signing keys of sane types survive."""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.tokens import KeyPair
from vigie.auth import JwksError, parse_jwks


def _doc(*keys: Any) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def test_usable_keys_are_indexed_by_kid(hospital_key: KeyPair, psc_key: KeyPair) -> None:
    keys = parse_jwks(_doc(hospital_key.jwk(), psc_key.jwk()), source="test")
    assert len(keys) == 2
    rsa_key, ec_key = keys.find(hospital_key.kid), keys.find(psc_key.kid)
    assert rsa_key is not None and rsa_key.accepts("RS256") and rsa_key.accepts("RS256")
    assert not rsa_key.accepts("ES256") and not rsa_key.accepts("PS256")  # alg pinned by JWK
    assert ec_key is not None and ec_key.accepts("ES256") and not ec_key.accepts("ES384")
    assert keys.find(None) is None  # two keys: a kid-less token matches none


def test_skipped_keys(hospital_key: KeyPair, psc_key: KeyPair) -> None:
    small = KeyPair.rsa("small", bits=1024)
    members = [
        hospital_key.jwk(kid="enc", use="enc"),
        hospital_key.jwk(kid="ops", key_ops=["encrypt"]),
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        psc_key.private_jwk() | {"kid": "leaked"},
        small.jwk(),
        psc_key.jwk(kid="bad-crv", crv="P-999"),
        psc_key.jwk(kid="k" * 300),
        psc_key.jwk(kid=7),
        hospital_key.jwk(kid="wrong-alg", alg="ES256"),
        hospital_key.jwk(kid="odd-alg", alg=["RS256"]),
        {"kty": "RSA", "kid": "broken", "n": "AQAB"},
        "not an object",
        KeyPair.ed25519("ok").jwk(),
    ]
    keys = parse_jwks(_doc(*members), source="test")
    assert list(keys.by_kid) == ["ok"]


def test_duplicate_kids_are_dropped(hospital_key: KeyPair, attacker_rsa: KeyPair,
                                    psc_key: KeyPair) -> None:
    keys = parse_jwks(_doc(hospital_key.jwk(), attacker_rsa.jwk(), psc_key.jwk()),
                      source="test")
    assert hospital_key.kid not in keys.by_kid and psc_key.kid in keys.by_kid


@pytest.mark.parametrize("document", [b"", b"<html>", b"[]", b'{"keys": {}}', b'{"keys": []}',
                                      b'{"nokeys": 1}', _doc({"kty": "oct", "k": "AA"})])
def test_unusable_documents_raise(document: bytes) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document, source="test")


def test_single_key_without_kid_matches_kidless_tokens(psc_key: KeyPair) -> None:
    keys = parse_jwks(_doc(psc_key.jwk(kid=None)), source="test")
    assert keys.find(None) is not None and keys.find("anything") is None
