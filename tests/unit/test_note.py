"""Tests for exchange.core.note: signed notes, checkpoints and cosignatures.

Known answers come from the C2SP specs in ``conformance/third_party/c2sp-specs`` (vendored with their licence) and from the
package documentation of golang.org/x/mod/sumdb/note (whose example includes
a private key, so signing can be checked byte for byte).
"""

from __future__ import annotations

import base64
import hashlib

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.core.merkle import EMPTY_ROOT
from exchange.core.note import (
    EM_DASH,
    MAX_SIGNATURES,
    MAX_TIMESTAMP,
    SIG_TYPE_COSIGNATURE_V1,
    SIG_TYPE_ED25519,
    Checkpoint,
    CheckpointError,
    CosignatureSigner,
    CosignatureVerifier,
    NoteError,
    NoteSigner,
    NoteVerifier,
    Signature,
    append_signatures,
    compute_key_hash,
    cosignature_message,
    open_checkpoint,
    open_note,
    parse_note,
    parse_signatures,
    parse_verifier_key,
    sign_note,
    validate_key_name,
)

# c2sp.org/signed-note, "Verifier keys" / "Example".
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n"
    "\n"
    f"{EM_DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1"
    "ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# c2sp.org/signed-note, introduction (no key published).
QUASIMODO_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed è subito sera.\n"
    "\n"
    f"{EM_DASH} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+"
    "EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)

# c2sp.org/tlog-cosignature, introduction (keys not published).
SOFA_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_NOTE = (
    SOFA_TEXT
    + "\n"
    + f"{EM_DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDe"
    "OoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    + f"{EM_DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OW"
    "XEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)

# c2sp.org/tlog-witness, add-checkpoint example response body.
WITNESS_RESPONSE = (
    f"{EM_DASH} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucj"
    "L39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==\n"
    f"{EM_DASH} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiO"
    "lVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==\n"
    f"{EM_DASH} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz085"
    "4aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==\n"
)

# golang.org/x/mod/sumdb/note package documentation.
GO_SEED_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_PETER_LINE = (
    f"{EM_DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
    "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_LINE = (
    f"{EM_DASH} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ov"
    "TG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)


def _seed(byte: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(bytes([byte]) * 32)


def _go_signer() -> NoteSigner:
    material = base64.b64decode(GO_SEED_KEY.split("+", 4)[4])
    assert material[0] == SIG_TYPE_ED25519
    return NoteSigner("PeterNeumann", nacl.signing.SigningKey(material[1:]))


LOG = NoteSigner("log.example/trustwire", _seed(1))
OTHER = NoteSigner("other.example/key", _seed(2))
WITNESSES = [CosignatureSigner(f"witness.example/w{i}", _seed(10 + i)) for i in range(4)]
CHECKPOINT = Checkpoint("log.example/trustwire", 1234, hashlib.sha256(b"root").digest())
TEXT = "hello, world\n\nsecond paragraph — with an em dash\n"


# --------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------


def test_spec_example_verifies() -> None:
    verifier = NoteVerifier.from_string(SPEC_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_hash == bytes.fromhex("530d903a")
    assert verifier.verifier_key() == SPEC_VKEY
    note = open_note(SPEC_NOTE, [verifier])
    assert note.text == "This is an example message.\n"
    assert [(s.name, s.key_hash.hex()) for s in note.verified] == [("example.com/foo", "530d903a")]
    assert note.verified[0].signature_type == SIG_TYPE_ED25519
    assert note.verified[0].timestamp is None
    assert note.unverified == ()


def test_spec_example_key_hash_formula() -> None:
    verifier = NoteVerifier.from_string(SPEC_VKEY)
    digest = hashlib.sha256(b"example.com/foo\n\x01" + verifier.public_key).digest()
    assert verifier.key_hash == digest[:4]
    assert compute_key_hash("example.com/foo", 1, verifier.public_key) == digest[:4]


def test_spec_example_tampered_text_rejected() -> None:
    verifier = NoteVerifier.from_string(SPEC_VKEY)
    tampered = SPEC_NOTE.replace("example message", "example massage")
    with pytest.raises(NoteError, match="does not verify"):
        open_note(tampered, [verifier])


def test_go_example_signs_byte_for_byte() -> None:
    signer = _go_signer()
    assert signer.verifier_key() == GO_PETER_VKEY
    assert sign_note(GO_TEXT, [signer]) == GO_TEXT + "\n" + GO_PETER_LINE


def test_go_example_two_signers() -> None:
    note = GO_TEXT + "\n" + GO_PETER_LINE + GO_ENOCH_LINE
    peter = NoteVerifier.from_string(GO_PETER_VKEY)
    enoch = NoteVerifier.from_string(GO_ENOCH_VKEY)
    opened = open_note(note, [peter, enoch], require=2)
    assert opened.text == GO_TEXT
    assert [s.name for s in opened.verified] == ["PeterNeumann", "EnochRoot"]
    only_enoch = open_note(note, [enoch])
    assert [s.name for s in only_enoch.unverified] == ["PeterNeumann"]
    with pytest.raises(NoteError, match="1 verified signature"):
        open_note(note, [enoch], require=2)


def test_quasimodo_example_parses() -> None:
    parsed = parse_note(QUASIMODO_NOTE)
    assert parsed.text.endswith("\n\ned è subito sera.\n")
    assert parsed.text.count("\n") == 4
    assert [s.name for s in parsed.signatures] == ["quasimodo.example/salvatore"]
    assert len(parsed.signatures[0].signature) == 64
    with pytest.raises(NoteError, match="0 verified"):
        open_note(QUASIMODO_NOTE, [LOG.verifier])


def test_checkpoint_spec_example() -> None:
    parsed = parse_note(SOFA_NOTE)
    assert parsed.text == SOFA_TEXT
    checkpoint = Checkpoint.parse(parsed.text)
    assert checkpoint.origin == "example.com/behind-the-sofa"
    assert checkpoint.size == 20852163
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == SOFA_TEXT
    log_sig, cosig = parsed.signatures
    assert log_sig.key_hash.hex() == "033de0ae"
    assert len(log_sig.signature) == 64
    # The cosignature's timestamp is the one in the spec's signed-message example.
    assert cosig.name == "witness.example.com/w1"
    assert len(cosig.signature) == 72
    assert int.from_bytes(cosig.signature[:8], "big") == 1679315147


def test_cosignature_message_matches_spec_example() -> None:
    expected = (
        "cosignature/v1\n"
        "time 1679315147\n"
        "example.com/behind-the-sofa\n"
        "20852163\n"
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    ).encode()
    assert cosignature_message(SOFA_TEXT, 1679315147) == expected
    signer = CosignatureSigner("witness.example.com/w1", _seed(7))
    signature = signer.sign(Checkpoint.parse(SOFA_TEXT), 1679315147)
    assert signature.signature[:8] == (1679315147).to_bytes(8, "big")
    # Independent check of the signed bytes with the raw Ed25519 key.
    signer.signing_key.verify_key.verify(expected, signature.signature[8:])


def test_cosigner_key_hash_uses_type_4() -> None:
    signer = CosignatureSigner("witness.example.com/w1", _seed(7))
    public_key = bytes(signer.signing_key.verify_key)
    digest = hashlib.sha256(b"witness.example.com/w1\n\x04" + public_key).digest()
    assert signer.key_hash == digest[:4]
    vkey = signer.verifier_key()
    name, hex_hash, material = vkey.split("+", 2)
    assert (name, hex_hash) == ("witness.example.com/w1", digest[:4].hex())
    assert base64.b64decode(material) == b"\x04" + public_key
    assert CosignatureVerifier.from_string(vkey) == signer.verifier
    # Same key with type 0x01 has a different key ID and vkey.
    plain = NoteVerifier("witness.example.com/w1", public_key)
    assert plain.key_hash != signer.key_hash


def test_witness_response_example_parses() -> None:
    signatures = parse_signatures(WITNESS_RESPONSE)
    assert [s.name for s in signatures] == [
        "witness.example/w1",
        "witness.example/w1",
        "witness.example/w2",
    ]
    assert all(len(s.signature) == 72 for s in signatures)
    assert "".join(s.to_line() for s in signatures) == WITNESS_RESPONSE


# --------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------


def test_sign_open_round_trip() -> None:
    note = sign_note(TEXT, [LOG, OTHER])
    opened = open_note(note, [LOG.verifier, OTHER.verifier], require=2)
    assert opened.text == TEXT
    assert opened.is_signed_by(LOG.verifier)
    assert opened.is_signed_by(OTHER.verifier)
    assert parse_note(note.encode()).text == TEXT


def test_blank_lines_in_text_round_trip() -> None:
    for text in ["\n", "a\n\n", "a\n\n\n", "\n\nx\n"]:
        note = sign_note(text, [LOG])
        assert open_note(note, [LOG.verifier]).text == text


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        alphabet=st.characters(codec="utf-8", min_codepoint=0x0A).filter(
            lambda c: c == "\n" or c >= " "
        ),
        max_size=200,
    )
)
def test_property_round_trip(body: str) -> None:
    text = body + "\n"
    assert open_note(sign_note(text, [LOG]), [LOG.verifier]).text == text


def test_every_byte_tamper_detected() -> None:
    note = sign_note("short message\n", [LOG]).encode()
    for position in range(len(note)):
        for mask in (0x01, 0x20, 0x80):
            data = bytearray(note)
            data[position] ^= mask
            with pytest.raises(NoteError):
                open_note(bytes(data), [LOG.verifier])


def test_wrong_key_with_same_name_and_id_fails() -> None:
    note = sign_note(TEXT, [LOG])
    forged = NoteSigner(LOG.name, _seed(99))
    forged_line = Signature(LOG.name, LOG.key_hash, forged.sign(TEXT).signature).to_line()
    with pytest.raises(NoteError, match="does not verify"):
        open_note(TEXT + "\n" + forged_line, [LOG.verifier])
    # A bad signature from a known key rejects the note even if another verifies.
    with pytest.raises(NoteError, match="does not verify"):
        open_note(note + forged_line, [LOG.verifier])


def test_unknown_keys_ignored_but_not_enough() -> None:
    note = sign_note(TEXT, [OTHER, LOG])
    opened = open_note(note, [LOG.verifier])
    assert [s.name for s in opened.verified] == [LOG.name]
    assert [s.name for s in opened.unverified] == [OTHER.name]
    with pytest.raises(NoteError, match="0 verified"):
        open_note(sign_note(TEXT, [OTHER]), [LOG.verifier])
    with pytest.raises(NoteError, match="2 required"):
        open_note(note, [LOG.verifier], require=2)
    with pytest.raises(ValueError, match="require"):
        open_note(note, [LOG.verifier], require=0)


def test_same_name_different_id_is_unknown() -> None:
    impostor = NoteSigner(LOG.name, _seed(50))
    assert impostor.key_hash != LOG.key_hash
    opened = open_note(sign_note(TEXT, [impostor, LOG]), [LOG.verifier])
    assert len(opened.unverified) == 1
    same_id_other_name = Signature("x.example/y", LOG.key_hash, b"\x00" * 64)
    note = sign_note(TEXT, [LOG]) + same_id_other_name.to_line()
    assert open_note(note, [LOG.verifier]).unverified == (same_id_other_name,)


def test_duplicate_signature_counts_once() -> None:
    line = LOG.sign(TEXT).to_line()
    opened = open_note(TEXT + "\n" + line + line, [LOG.verifier])
    assert len(opened.verified) == 1
    with pytest.raises(NoteError, match="2 required"):
        open_note(TEXT + "\n" + line + line, [LOG.verifier], require=2)


# --------------------------------------------------------------------------
# Strict parsing
# --------------------------------------------------------------------------


GOOD = sign_note("msg\n", [LOG])
GOOD_LINE = GOOD.split("\n\n", 1)[1]


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        (GOOD[:-1], "end with a newline"),
        (GOOD.replace("\n\n", "\n"), "no blank line"),
        ("msg\n\n", "no signature lines"),
        ("msg\n\n\n", "no signature lines"),
        ("msg\n\n" + GOOD_LINE.replace(EM_DASH, "-"), "em dash"),
        ("msg\n\n" + GOOD_LINE.replace(EM_DASH + " ", EM_DASH + "  "), "key name is empty"),
        ("msg\n\n" + GOOD_LINE.replace(" ", "\u00a0", 1), "em dash"),
        ("msg\n\n" + GOOD_LINE.replace("=\n", "\n"), "base64"),
        ("msg\n\n" + GOOD_LINE.replace("=\n", "= \n"), "base64"),
        ("msg\n\n" + GOOD_LINE.replace("\n", "\r\n"), "control character U\\+000D"),
        ("m\tsg\n\n" + GOOD_LINE, "control character U\\+0009"),
        ("msg\n\n" + GOOD_LINE + "\n", "no signature lines"),
        ("msg\n\n" + GOOD_LINE + "x\n", "em dash"),
        ("msg\n\n" + f"{EM_DASH} a AAAA\n", "shorter than its key ID"),
        ("msg\n\n" + f"{EM_DASH} a+b AAAAAAA=\n", "forbidden U\\+002B"),
        ("msg\n\n" + f"{EM_DASH} a AAAAAAB=\n", "not canonical"),
        ("msg\n\n" + GOOD_LINE.replace("\n", ""), "end with a newline"),
        ("msg\n\n" + GOOD_LINE * (MAX_SIGNATURES + 1), "limit is 100"),
        (b"msg\n\n\xff" + GOOD_LINE.encode(), "UTF-8"),
        ("msg\ud800\n\n" + GOOD_LINE, "surrogate"),
        (b"x" * (1 << 20) + b"\n\n" + GOOD_LINE.encode(), "larger than"),
    ],
)
def test_malformed_notes_rejected(note: str | bytes, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        open_note(note, [LOG.verifier])


def test_accepts_at_least_16_signatures() -> None:
    signers = [NoteSigner(f"k{i}.example/x", _seed(100 + i)) for i in range(20)]
    note = sign_note(TEXT, signers)
    opened = open_note(note, [s.verifier for s in signers], require=20)
    assert len(opened.verified) == 20


@pytest.mark.parametrize(
    "name", ["", "a b", "a+b", "a\u00a0b", "a\u2003b", "a\nb", "a\x00b", " a"]
)
def test_bad_key_names(name: str) -> None:
    with pytest.raises(NoteError):
        validate_key_name(name)
    with pytest.raises(NoteError):
        NoteSigner(name, _seed(1))


def test_sign_note_rejects_bad_text() -> None:
    with pytest.raises(NoteError, match="newline"):
        sign_note("no newline", [LOG])
    with pytest.raises(NoteError, match="control"):
        sign_note("bell\a\n", [LOG])
    with pytest.raises(NoteError, match="at least one signer"):
        sign_note("ok\n", [])


# --------------------------------------------------------------------------
# Verifier keys
# --------------------------------------------------------------------------


def test_verifier_key_round_trip() -> None:
    for signer in (LOG, OTHER, _go_signer()):
        vkey = signer.verifier_key()
        assert NoteVerifier.from_string(vkey) == signer.verifier
        assert parse_verifier_key(vkey) == signer.verifier
        assert NoteVerifier.from_string(vkey).verifier_key() == vkey
    for witness in WITNESSES:
        vkey = witness.verifier_key()
        assert parse_verifier_key(vkey) == witness.verifier


def _vkey_with(
    name: str = "example.com/foo", hex_hash: str | None = None, raw: bytes | None = None
) -> str:
    verifier = NoteVerifier.from_string(SPEC_VKEY)
    material = raw if raw is not None else b"\x01" + verifier.public_key
    if hex_hash is None:
        hex_hash = compute_key_hash(name, material[0], material[1:]).hex()
    return f"{name}+{hex_hash}+{base64.b64encode(material).decode()}"


@pytest.mark.parametrize(
    ("vkey", "reason"),
    [
        ("example.com/foo+530d903a", "must be <name>"),
        (SPEC_VKEY.replace("530d903a", "530d903b"), "does not match"),
        (SPEC_VKEY.replace("530d903a", "530D903A"), "lowercase hex"),
        (SPEC_VKEY.replace("530d903a", "530d903"), "lowercase hex"),
        (SPEC_VKEY.replace("+Aeky", "+Beky"), "does not match"),
        (SPEC_VKEY + "=", "base64"),
        (SPEC_VKEY[:-1], "base64"),
        (SPEC_VKEY.replace("example.com/foo", "example.com /foo"), "forbidden"),
        (_vkey_with(raw=b"\x02" + b"\x00" * 32), "type is 0x02"),
        (_vkey_with(raw=b"\x04" + b"\x00" * 32), "type is 0x04"),
        (_vkey_with(raw=b"\x01" + b"\x00" * 31), "33"),
        (_vkey_with(raw=b"\x01" + b"\x00" * 33), "33"),
        (_vkey_with(name=""), "empty"),
    ],
)
def test_bad_verifier_keys(vkey: str, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        NoteVerifier.from_string(vkey)


def test_cosignature_vkey_type_is_strict() -> None:
    with pytest.raises(NoteError, match="expected 0x04"):
        CosignatureVerifier.from_string(SPEC_VKEY)
    with pytest.raises(NoteError, match="unsupported"):
        parse_verifier_key(_vkey_with(raw=b"\x02" + b"\x00" * 32))


def test_signer_repr_hides_key() -> None:
    assert "signing_key" not in repr(LOG)
    assert "signing_key" not in repr(WITNESSES[0])


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


def test_checkpoint_round_trip() -> None:
    checkpoint = Checkpoint("o.example/log", 0, EMPTY_ROOT, ("ext one", "— two"))
    text = checkpoint.to_text()
    assert text == f"o.example/log\n0\n{base64.b64encode(EMPTY_ROOT).decode()}\next one\n— two\n"
    assert Checkpoint.parse(text) == checkpoint
    big = Checkpoint("o", (1 << 64) - 1, EMPTY_ROOT)
    assert Checkpoint.parse(big.to_text()) == big


ROOT_B64 = base64.b64encode(EMPTY_ROOT).decode()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (f"o\n1\n{ROOT_B64}", "newline"),
        ("o\n1\n", "origin, size and root"),
        (f"\n1\n{ROOT_B64}\n", "origin is empty"),
        (f"o\n01\n{ROOT_B64}\n", "not canonical decimal"),
        (f"o\n-1\n{ROOT_B64}\n", "not canonical decimal"),
        (f"o\n+1\n{ROOT_B64}\n", "not canonical decimal"),
        (f"o\n1_0\n{ROOT_B64}\n", "not canonical decimal"),
        (f"o\n\u0661\n{ROOT_B64}\n", "not canonical decimal"),
        (f"o\n 1\n{ROOT_B64}\n", "not canonical decimal"),
        (f"o\n{1 << 64}\n{ROOT_B64}\n", "outside"),
        (f"o\n{'9' * 21}\n{ROOT_B64}\n", "not canonical decimal"),
        ("o\n1\nAAAA\n", "3 bytes"),
        (f"o\n1\n{ROOT_B64[:-1]}\n", "base64"),
        (f"o\n1\n{ROOT_B64[:-2]}V=\n", "not canonical"),
        (f"o\n1\n{ROOT_B64}\n\n", "extension line is empty"),
        (f"o\n1\n{ROOT_B64}\nok\n\nbad\n", "extension line is empty"),
        (f"o\r\n1\n{ROOT_B64}\n", "control"),
    ],
)
def test_bad_checkpoints(text: str, reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        Checkpoint.parse(text)


def test_checkpoint_constructor_validates() -> None:
    with pytest.raises(CheckpointError, match="newline"):
        Checkpoint("a\nb", 1, EMPTY_ROOT)
    with pytest.raises(CheckpointError, match="outside"):
        Checkpoint("a", -1, EMPTY_ROOT)
    with pytest.raises(CheckpointError, match="31 bytes"):
        Checkpoint("a", 1, EMPTY_ROOT[:31])
    with pytest.raises(CheckpointError, match="empty"):
        Checkpoint("a", 1, EMPTY_ROOT, ("",))


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=(1 << 64) - 1),
    root=st.binary(min_size=32, max_size=32),
    origin=st.text(
        alphabet=st.characters(codec="utf-8", min_codepoint=0x20), min_size=1
    ),
)
def test_property_checkpoint_round_trip(size: int, root: bytes, origin: str) -> None:
    checkpoint = Checkpoint(origin, size, root)
    assert Checkpoint.parse(checkpoint.to_text()) == checkpoint


# --------------------------------------------------------------------------
# Cosignatures and quorum
# --------------------------------------------------------------------------


def _cosigned(timestamp: int = 1_700_000_000, count: int = 3) -> str:
    note = sign_note(CHECKPOINT.to_text(), [LOG])
    lines = [w.sign(CHECKPOINT, timestamp + i) for i, w in enumerate(WITNESSES[:count])]
    return append_signatures(note, lines)


def test_cosignature_round_trip_with_timestamps() -> None:
    opened = open_checkpoint(
        _cosigned(), [LOG.verifier], [w.verifier for w in WITNESSES], quorum=3
    )
    assert opened.checkpoint == CHECKPOINT
    assert [s.timestamp for s in opened.cosignatures] == [
        1_700_000_000,
        1_700_000_001,
        1_700_000_002,
    ]
    assert all(s.signature_type == SIG_TYPE_COSIGNATURE_V1 for s in opened.cosignatures)


def test_quorum_not_met() -> None:
    cosigners = [w.verifier for w in WITNESSES]
    with pytest.raises(NoteError, match="3 cosignature.*quorum is 4"):
        open_checkpoint(_cosigned(), [LOG.verifier], cosigners, quorum=4)
    with pytest.raises(ValueError, match="quorum"):
        open_checkpoint(_cosigned(), [LOG.verifier], cosigners[:1], quorum=2)


def test_duplicate_cosigner_counts_once() -> None:
    witness = WITNESSES[0]
    note = append_signatures(
        sign_note(CHECKPOINT.to_text(), [LOG]),
        [witness.sign(CHECKPOINT, 5), witness.sign(CHECKPOINT, 6)],
    )
    opened = open_checkpoint(note, [LOG.verifier], [witness.verifier], quorum=1)
    assert len(opened.cosignatures) == 1
    with pytest.raises(NoteError, match="1 cosignature"):
        open_checkpoint(note, [LOG.verifier], [witness.verifier, witness.verifier], quorum=2)


def test_checkpoint_needs_log_signature() -> None:
    note = append_signatures(
        sign_note(CHECKPOINT.to_text(), [OTHER]), [WITNESSES[0].sign(CHECKPOINT, 1)]
    )
    with pytest.raises(NoteError, match="not signed by the log"):
        open_checkpoint(note, [LOG.verifier], [WITNESSES[0].verifier], quorum=1)


def test_cosignature_over_other_checkpoint_fails() -> None:
    other = Checkpoint(CHECKPOINT.origin, CHECKPOINT.size + 1, CHECKPOINT.root_hash)
    note = append_signatures(
        sign_note(CHECKPOINT.to_text(), [LOG]), [WITNESSES[0].sign(other, 1)]
    )
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(note, [LOG.verifier], [WITNESSES[0].verifier], quorum=1)


def test_cosignature_timestamp_is_signed() -> None:
    signature = WITNESSES[0].sign(CHECKPOINT, 100)
    moved = Signature(
        signature.name, signature.key_hash, (101).to_bytes(8, "big") + signature.signature[8:]
    )
    note = append_signatures(sign_note(CHECKPOINT.to_text(), [LOG]), [moved])
    with pytest.raises(NoteError, match="does not verify"):
        open_checkpoint(note, [LOG.verifier], [WITNESSES[0].verifier], quorum=1)


def test_cosignature_bounds() -> None:
    with pytest.raises(NoteError, match="2\\^63"):
        WITNESSES[0].sign(CHECKPOINT, MAX_TIMESTAMP + 1)
    with pytest.raises(NoteError, match="2\\^63"):
        WITNESSES[0].sign(CHECKPOINT, -1)
    assert WITNESSES[0].sign(CHECKPOINT, MAX_TIMESTAMP).signature[:8] == b"\x7f" + b"\xff" * 7
    verifier = WITNESSES[0].verifier
    with pytest.raises(NoteError, match="above 2\\^63-1"):
        verifier.verify(CHECKPOINT.to_text(), b"\x80" + b"\x00" * 71)
    with pytest.raises(NoteError, match="expected 72"):
        verifier.verify(CHECKPOINT.to_text(), b"\x00" * 64)


def test_cosignature_with_extension_lines() -> None:
    checkpoint = Checkpoint("log.example/trustwire", 5, EMPTY_ROOT, ("extra",))
    note = append_signatures(
        sign_note(checkpoint.to_text(), [LOG]), [WITNESSES[1].sign(checkpoint, 9)]
    )
    opened = open_checkpoint(note, [LOG.verifier], [WITNESSES[1].verifier], quorum=1)
    assert opened.checkpoint.extensions == ("extra",)


def test_witness_flow_unknown_cosignatures_kept() -> None:
    note = _cosigned(count=4)
    opened = open_checkpoint(note, [LOG.verifier], [WITNESSES[0].verifier], quorum=1)
    assert len(opened.note.unverified) == 3
    assert [s.name for s in opened.note.unverified] == [w.name for w in WITNESSES[1:]]


def test_append_signatures_deduplicates() -> None:
    note = sign_note(CHECKPOINT.to_text(), [LOG])
    line = WITNESSES[0].sign(CHECKPOINT, 1)
    once = append_signatures(note, [line])
    assert append_signatures(once, [line]) == once
    response = line.to_line()
    assert append_signatures(note, parse_signatures(response)) == once


def test_open_checkpoint_rejects_non_checkpoint_text() -> None:
    note = sign_note("not a checkpoint\n", [LOG])
    with pytest.raises(CheckpointError):
        open_checkpoint(note, [LOG.verifier])
    with pytest.raises(ValueError, match="log verifier"):
        open_checkpoint(note, [])
