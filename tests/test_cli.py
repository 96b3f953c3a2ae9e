"""The command line's help: every subcommand says what it does, shows an example, names its
config and its exit codes; every option has help text; no reST markup reaches a terminal."""

from __future__ import annotations

import argparse
import re

import pytest

from spark_gmm.cli import build_parser

PARSER = build_parser()
SUBCOMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction))


def test_every_command_of_the_readme_has_a_subcommand() -> None:
    assert set(SUBCOMMANDS.choices) == {"demo", "fit", "score", "drift", "report", "bench",
                                        "params", "package"}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS.choices))
def test_help_describes_shows_an_example_config_and_exit_codes(name: str) -> None:
    parser = SUBCOMMANDS.choices[name]
    text = parser.format_help()
    assert parser.description and len(parser.description) > 30, name
    example = re.search(r"^example:\n  (spark-gmm \S+.*)$", text, re.MULTILINE)
    assert example and example.group(1).split()[1] == name, text
    assert re.search(r"^config: \S", text, re.MULTILINE), text
    codes = re.search(r"^exit codes: (.*?)(?:\n\n|\Z)", text, re.MULTILINE | re.DOTALL)
    assert codes and "0 success" in codes.group(1), text
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    assert not re.search(r"``|:class:|:func:|:mod:|::$", text, re.MULTILINE), text
    for line in text.splitlines():
        assert len(line) <= 100, line


def test_the_examples_parse() -> None:
    for name in SUBCOMMANDS.choices:
        example = SUBCOMMANDS.choices[name].epilog.split("\n")[1].split()[1:]
        args = PARSER.parse_args([a.strip("'") for a in example])
        assert args.command == name


def test_top_level_help_has_no_markup_and_names_the_exit_codes() -> None:
    text = PARSER.format_help()
    assert "exit codes: 0 success" in " ".join(text.split())
    assert "``" not in text
