"""The stdlib core the standalone script runs: DSSE's pre-authentication encoding and ed25519
verification, pure Python and with cryptography, on the published test vectors."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agileplus.provenance import attestation
from agileplus.provenance.standalone import check_envelope, ed25519_verify, pae

# RFC 8032 section 7.1, tests 1 and 2: (public key, message, signature)
VECTORS = [
    ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe2465"
     "5141438e7a100b"),
    ("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb0"
     "0d291612bb0c00"),
]


def test_pae_is_the_dsse_v1_encoding():
    assert pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


@pytest.mark.parametrize("pure", [True, False], ids=["pure-python", "cryptography"])
@pytest.mark.parametrize(("public", "message", "signature"), VECTORS, ids=["rfc8032-1", "rfc8032-2"])
def test_the_rfc_8032_vectors_verify(public, message, signature, pure):
    assert ed25519_verify(bytes.fromhex(public), bytes.fromhex(message), bytes.fromhex(signature), pure=pure)


@pytest.mark.parametrize(("public", "message", "signature"), VECTORS[:1], ids=["rfc8032-1"])
def test_pure_python_refuses_a_flipped_bit(public, message, signature):
    flipped = bytearray(bytes.fromhex(signature))
    flipped[10] ^= 1
    assert not ed25519_verify(bytes.fromhex(public), bytes.fromhex(message), bytes(flipped), pure=True)


def test_pure_python_agrees_with_cryptography_on_fresh_keys():
    for _ in range(5):
        key, message = Ed25519PrivateKey.generate(), os.urandom(64)
        public, signature = attestation.public_bytes(key), key.sign(message)
        assert ed25519_verify(public, message, signature, pure=True)
        assert not ed25519_verify(public, message + b"!", signature, pure=True)


def test_an_envelope_that_is_not_json_is_malformed_not_verified():
    verdict = check_envelope("a note someone wrote by hand", b"\0" * 32, "a" * 40, "b" * 40)
    assert verdict.status == "malformed" and verdict.exit_code == 1
