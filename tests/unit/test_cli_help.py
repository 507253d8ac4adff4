"""Every subcommand explains itself: a description and an example that the real parser
accepts; errors under --json are JSON; the exit-code table is on the top-level help."""

from __future__ import annotations

import json
import shlex

import pytest

from clients.cli.help_text import EXAMPLES, leaf_parsers
from clients.cli.main import build_parser
from exchange.core.errors import ExitCode
from exchange.server import cli as serve
from exchange.program import demo
from exchange.program.cli import main

COMMANDS = (serve.add_parser, demo.add_parser)


def test_every_subcommand_has_a_description_and_an_example() -> None:
    leaves = leaf_parsers(build_parser(COMMANDS))
    assert {name for name, _, _ in leaves} == set(EXAMPLES)
    for name, parser, _ in leaves:
        assert parser.description, name
        assert parser.epilog and "trustwire " in parser.epilog, name
        assert "example" in parser.format_help(), name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_parses(name: str) -> None:
    argv = shlex.split(EXAMPLES[name])
    assert argv[0] == "trustwire" and " ".join(argv[1:]).startswith(name)
    args = build_parser(COMMANDS).parse_args(argv[1:])
    assert callable(args.run)


def test_top_level_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for code in ExitCode:
        assert f"{int(code)} " in out


def test_usage_error_under_json_is_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "directory", "--json", "--no-such-flag"]) == ExitCode.USAGE
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["reason"] == "usage" and error["exit_code"] == ExitCode.USAGE and "--no-such-flag" in error["message"]


def test_runtime_error_under_json_is_json(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "directory", "--json", "--operator-key-file", "/nonexistent/ops.key"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["reason"] == "invalid-config" and "does not exist" in error["message"]
    assert captured.err.startswith("trustwire: error:")  # people still read stderr


def test_runtime_error_without_json_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops", "directory", "--operator-key-file", "/nonexistent/ops.key"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("trustwire: error:")
