"""libFuzzer child of reliability/fuzz_long.py: coverage-guided fuzzing of every parser.

The first byte of an input selects the parser target (reliability/fuzzing.py PARSERS,
sorted by name), the rest is its input. Run through fuzz_long, which seeds the corpus
and turns crash files into regression vectors; by hand:

    python -m reliability.fuzz_atheris -max_total_time=60 CORPUS_DIR
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["exchange", "reliability.fuzzing"]):
    from reliability.fuzzing import PARSERS, check_parser

TARGETS = sorted(PARSERS)


def one_input(data: bytes) -> None:
    if data:
        check_parser(TARGETS[data[0] % len(TARGETS)], data[1:])


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
