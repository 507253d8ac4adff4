"""Property fuzzing of every parser: accept, or refuse with a TrustwireError; never crash.

Targets (reliability/fuzzing.py): the DSSE envelope, entry payloads (decode_entry +
validate_entry), ledger records, signed notes (parse_note, open_note,
open_checkpoint), checkpoint bodies, verifier keys, signature lines and both halves of
the C2SP witness protocol. Accepted inputs must re-encode to their exact bytes.
Inputs come three ways: random bytes, mutated valid seeds, and (for the text formats)
a grammar of plausible lines.
"""

from __future__ import annotations

import base64
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchange.core.entries import PAYLOAD_TYPES
from reliability.fuzzing import PARSERS, check_parser, mutate, parser_seeds
from tests.fuzz.conftest import examples

SEEDS = parser_seeds()
TARGETS = sorted(PARSERS)


def test_seeds_are_accepted() -> None:
    """The seeds are valid inputs, so mutations start from deep inside each parser."""
    for target, seeds in SEEDS.items():
        for seed in seeds:
            assert check_parser(target, seed), (target, seed)


@pytest.mark.parametrize("target", TARGETS)
@examples(600)
@given(data=st.binary(max_size=512))
def test_random_bytes(target: str, data: bytes) -> None:
    check_parser(target, data)


@pytest.mark.parametrize("target", TARGETS)
@examples(1200)
@given(pick=st.integers(min_value=0), rnd=st.randoms(use_true_random=False))
def test_mutated_seeds(target: str, pick: int, rnd: random.Random) -> None:
    seeds = SEEDS[target]
    check_parser(target, mutate(seeds[pick % len(seeds)], rnd))


@examples(1000)
@given(
    payload_type=st.sampled_from(sorted(PAYLOAD_TYPES)) | st.text(max_size=80),
    pick=st.integers(min_value=0),
    rnd=st.randoms(use_true_random=False),
)
def test_entry_payload_types(payload_type: str, pick: int, rnd: random.Random) -> None:
    """A mutated payload under any payload type (including the wrong kind's)."""
    seeds = SEEDS["entry"]
    payload = seeds[pick % len(seeds)].partition(b"\x00")[2]
    check_parser("entry", payload_type.encode("utf-8", "surrogatepass") + b"\x00" + mutate(payload, rnd))


# -- the text formats, from a grammar of plausible pieces -------------------------------------

_B64_32 = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
_B64_ANY = st.binary(max_size=80).map(lambda b: base64.b64encode(b).decode())
_DECIMAL = st.one_of(
    st.integers(min_value=0, max_value=2**64 + 5).map(str),
    st.sampled_from(["", "00", "01", "-1", "+1", " 1", "1 ", "18446744073709551615", "18446744073709551616", "１"]),
)
_NAME = st.one_of(
    st.sampled_from(["fuzz.trustwire.invalid/log", "fuzz-witness", "a+b", "", "x y", "\u00a0", "\u2014"]),
    st.text(max_size=20),
)
_LINE = st.one_of(_NAME, _DECIMAL, _B64_32, _B64_ANY, st.text(max_size=30))
_SIG_LINE = st.builds(lambda n, s: f"\u2014 {n} {s}", _NAME, _B64_ANY) | st.text(max_size=40)


@st.composite
def _notes(draw: st.DrawFn) -> str:
    body = draw(st.lists(_LINE, min_size=0, max_size=6))
    sigs = draw(st.lists(_SIG_LINE, min_size=0, max_size=4))
    sep = draw(st.sampled_from(["\n", "\n\n", "", "\r\n"]))
    end = draw(st.sampled_from(["\n", "", "\n\n"]))
    return "\n".join(body) + "\n" + sep + "\n".join(sigs) + end


@examples(1000)
@given(note=_notes())
def test_note_grammar(note: str) -> None:
    data = note.encode("utf-8", "surrogatepass")
    check_parser("note", data)
    check_parser("checkpoint", note.partition("\n\n")[0].encode("utf-8", "surrogatepass") + b"\n")


@examples(800)
@given(lines=st.lists(_SIG_LINE, min_size=1, max_size=3), end=st.sampled_from(["\n", ""]))
def test_signature_lines_grammar(lines: list[str], end: str) -> None:
    for line in lines:
        check_parser("signature_line", line.encode("utf-8", "surrogatepass"))
    check_parser("witness_response", ("\n".join(lines) + end).encode("utf-8", "surrogatepass"))


@examples(800)
@given(
    name=_NAME,
    key_hash=st.text(alphabet="0123456789abcdefABCDEF", min_size=0, max_size=10),
    key=st.binary(max_size=40),
    sig_type=st.sampled_from([0x01, 0x04, 0x00, 0x02, 0xFF]),
)
def test_verifier_key_grammar(name: str, key_hash: str, key: bytes, sig_type: int) -> None:
    vkey = f"{name}+{key_hash}+{base64.b64encode(bytes([sig_type]) + key).decode()}"
    check_parser("verifier_key", vkey.encode("utf-8", "surrogatepass"))


@examples(800)
@given(
    old=_DECIMAL,
    proof=st.lists(_B64_32 | _B64_ANY, max_size=4),
    note=_notes(),
    sep=st.sampled_from(["\n", "\n\n", "\r\n"]),
)
def test_witness_request_grammar(old: str, proof: list[str], note: str, sep: str) -> None:
    header = "".join(line + "\n" for line in [f"old {old}", *proof])
    check_parser("witness_request", (header + sep + note).encode("utf-8", "surrogatepass"))
    check_parser("witness_response", (old + "\n").encode("utf-8", "surrogatepass"))
