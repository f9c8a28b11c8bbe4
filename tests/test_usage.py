"""README.md's "Command line" block and argparse (benchmarks/cli.py) say the same thing.

argparse is the one description of the command line (``loopbench --help``); the
README's block is a summary of it for a first reader. Both ways: every subcommand and
option the block names exists in argparse with that spelling (and a default it shows
is argparse's), and every subcommand and option of argparse is in the block, except
the internal ones cli.INTERNAL_OPTIONS declares.

The block's form: a line ``loopbench COMMAND ...`` starts a command, indented lines
continue it, and a line ``NAME: ...`` defines ``[NAME]``, which commands may use
(``[gate options]``).
"""

from __future__ import annotations

import argparse
import re

import pytest
from tf_loopbench.benchmarks.cli import INTERNAL_OPTIONS, commands

from tests.conftest import ROOT

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```\n(.*?)```", section, flags=re.S)
    assert block, "README's Command line section has no code block"
    return block[1].splitlines()


def readme_commands(block: list[str], known: set[str]) -> dict[str, str]:
    """{"loopbench run": "its text, [NAME]s expanded", ...} from the lines of README's
    block; ``known``: argparse's commands, which say where a command's words end."""
    entries: list[list[str]] = []
    names: dict[str, str] = {}
    for line in block:
        if line.startswith("loopbench "):
            entries.append([line])
        elif line.startswith(" ") and entries:
            entries[-1].append(line)
        elif match := re.match(r"^([a-z][a-z ]*):\s+(.*)$", line):
            names[match[1]] = match[2]
        elif line.strip():
            pytest.fail(f"README's block: a line that is no command, continuation or name: {line}")
    found = {}
    for entry in entries:
        text = " ".join(entry)
        for name, value in names.items():
            text = text.replace(f"[{name}]", value)
        words = text.split()
        command = f"loopbench {words[1]}"  # an unknown subcommand stays, and fails below
        for word in words[2:]:
            if f"{command} {word}" not in known:
                break
            command = f"{command} {word}"
        assert command not in found, f"README's block names {command} twice"
        found[command] = text
    return found


@pytest.fixture(scope="module")
def parser_commands() -> dict[str, list[argparse.Action]]:
    every = commands()
    # the commands a user types: not the root, not a group of subcommands (baseline)
    return {
        name: actions
        for name, actions in every.items()
        if name != "loopbench" and not any(other.startswith(f"{name} ") for other in every)
    }


@pytest.fixture(scope="module")
def readme(parser_commands) -> dict[str, str]:
    return readme_commands(readme_block(), set(commands()))


def options_of(actions: list[argparse.Action]) -> set[str]:
    return {
        option
        for action in actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_the_readme_names_every_subcommand_and_no_other(readme, parser_commands):
    assert set(readme) == set(parser_commands)


def test_every_option_in_the_readme_exists_in_argparse(readme, parser_commands):
    for command, text in readme.items():
        unknown = set(OPTION.findall(text)) - options_of(parser_commands.get(command, []))
        assert not unknown, f"README's `{command}` names options argparse lacks: {sorted(unknown)}"


def test_every_option_of_argparse_is_in_the_readme(readme, parser_commands):
    for command, actions in parser_commands.items():
        missing = options_of(actions) - set(OPTION.findall(readme[command])) - set(INTERNAL_OPTIONS)
        assert not missing, f"README's block lacks `{command}` {sorted(missing)}"
        for action in actions:
            if not action.option_strings:  # a positional: its metavar, as --help shows it
                assert re.search(rf"\b{action.metavar}\b", readme[command]), (command, action)


def test_a_default_the_readme_shows_is_argparses(readme, parser_commands):
    for command, text in readme.items():
        defaults = {o: a.default for a in parser_commands[command] for o in a.option_strings}
        for option, value in re.findall(r"\[(--[a-z-]+) (\d[\d.]*)\]", text):
            assert float(value) == defaults[option], (command, option, value)


def test_internal_options_are_the_hidden_ones(parser_commands):
    hidden = {
        option
        for actions in parser_commands.values()
        for action in actions
        if action.help == argparse.SUPPRESS
        for option in action.option_strings
    }
    assert hidden == set(INTERNAL_OPTIONS)


def test_the_check_catches_drift(parser_commands):
    """The block's reader sees a misspelt option and an unknown subcommand."""
    block = ["loopbench run      [--batchsize N]", "loopbench benchmark [--quick]"]
    drifted = readme_commands(block, set(commands()))
    assert set(drifted) == {"loopbench run", "loopbench benchmark"}
    assert "--batchsize" not in options_of(parser_commands["loopbench run"])
    assert "loopbench benchmark" not in parser_commands
