"""What ``loopbench run`` and ``tf_loopbench.run`` accept, option by option.

One parser per option: a value as typed on the command line (``"32,64"``), or as a
Python caller gives it (``[32, 64]``, ``True``), or as a parser already returned it
(``(32, 64)``) -> the value the run uses; bad input raises ``OptionError`` with one
line. The command line's argparse types are these parsers (benchmarks/cli.py), and
``make_request`` applies them to keyword arguments, so both say the same thing about
the same bad value: ``argument --batch-size: 0 is not a positive integer``.

Example::

    request = make_request(workload="linear", loop=["fit", "xla"], batch_size=[32, 64])
    request.batch_size  # (32, 64)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tf_loopbench.benchmarks.config import (
    FIT_JIT_CHOICES,
    PRECISIONS,
    START_METHODS,
    RunRequest,
    UsageError,
)
from tf_loopbench.benchmarks.shards import parse_shard
from tf_loopbench.loops.devices import DEVICE_CHOICES
from tf_loopbench.loops.distribute import StrategyError
from tf_loopbench.loops.distribute import parse as parse_strategy


class OptionError(ValueError):
    """A bad option value; the message is one line, without the option's name."""


def text_of(value: Any) -> str:
    """A value as the command line would hold it: ``[32, 64]`` -> ``"32,64"``."""
    if isinstance(value, list | tuple):
        return ",".join(text_of(item) for item in value)
    return str(value)


def positive_ints(value: Any) -> tuple[int, ...]:
    """``"32,128"`` (or ``[32, 128]``) -> (32, 128); every value a positive integer.

    >>> positive_ints("32,128"), positive_ints(64)
    ((32, 128), (64,))
    """
    values = []
    for part in text_of(value).split(","):
        part = part.strip()
        try:
            number = int(part)
        except ValueError:
            raise OptionError(f"{part!r} is not a positive integer") from None
        if number < 1:
            raise OptionError(f"{number} is not a positive integer")
        values.append(number)
    return tuple(values)


def positive_int(value: Any) -> int:
    """One positive integer: ``"8"`` or ``8`` -> 8."""
    text = text_of(value)
    if "," in text:
        raise OptionError(f"{text!r} is not a positive integer")
    (number,) = positive_ints(text)
    return number


def positive_float(value: Any) -> float:
    """A positive finite number: ``"25"`` -> 25.0."""
    text = text_of(value)
    try:
        number = float(text)
    except ValueError:
        raise OptionError(f"{text!r} is not a number") from None
    if not 0 < number < float("inf"):
        raise OptionError(f"{text!r} is not a positive number")
    return number


def _cast(value: Any, kind: type) -> Any:
    """``kind(value)``, failing with argparse's own message for that type."""
    text = text_of(value)
    try:
        return kind(text)
    except ValueError:
        raise OptionError(f"invalid {kind.__name__} value: {text!r}") from None


def integer(value: Any) -> int:
    """Any integer (a seed, a file descriptor)."""
    return _cast(value, int)


def number(value: Any) -> float:
    """Any number."""
    return _cast(value, float)


def text(value: Any) -> str:
    """A path or a name, as given."""
    return str(value)


def device(value: Any) -> str:
    """cpu, gpu or all (loops/devices.py)."""
    if value not in DEVICE_CHOICES:
        raise OptionError(f"unknown device {value!r}; choose from: {', '.join(DEVICE_CHOICES)}")
    return str(value)


def choices_of(option: str, choices: Sequence[str]) -> Callable[[Any], tuple[str, ...]]:
    """A parser: ``"a,b"`` -> ("a", "b"), each one of ``choices``, duplicates dropped.

    >>> choices_of("precision", ["float32", "mixed_bfloat16"])("float32,float32")
    ('float32',)
    """

    def parse(value: Any) -> tuple[str, ...]:
        given = text_of(value)
        values = tuple(dict.fromkeys(part.strip() for part in given.split(",") if part.strip()))
        for item in values or (given,):
            if item not in choices:
                raise OptionError(f"unknown {option} {item!r}; choose from {', '.join(choices)}")
        return values

    return parse


def one_of(choices: Sequence[str]) -> Callable[[Any], str]:
    """A parser: one of ``choices`` (the message is argparse's for ``choices``)."""

    def parse(value: Any) -> str:
        if value not in choices:
            listed = ", ".join(repr(choice) for choice in choices)
            raise OptionError(f"invalid choice: {value!r} (choose from {listed})")
        return str(value)

    return parse


def strategies(value: Any) -> tuple[str, ...]:
    """``"none,mirrored:2"`` -> ("none", "mirrored:2"), each a strategy
    loops/distribute.py parses (bad input: its one-line reason)."""
    given = text_of(value)
    parts = [part.strip() for part in given.split(",") if part.strip()] or [given]
    try:
        return tuple(dict.fromkeys(parse_strategy(part).key for part in parts))
    except StrategyError as exc:
        raise OptionError(str(exc)) from None


def shard(value: Any) -> tuple[int, int]:
    """``"2/4"`` (or the pair (2, 4)) -> (2, 4): shard I of N."""
    if isinstance(value, list | tuple) and len(value) == 2:
        value = f"{value[0]}/{value[1]}"
    try:
        parsed = parse_shard(str(value))
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return parsed.index, parsed.count


def names(value: Any) -> tuple[str, ...]:
    """Repeatable or comma-separated names: ``["linear,mlp", "gan"]`` -> three names."""
    items = value if isinstance(value, list | tuple) else [value]
    split = (name.strip() for item in items for name in str(item).split(","))
    return tuple(dict.fromkeys(name for name in split if name))


def sources(value: Any) -> tuple[str, ...]:
    """Repeatable model sources, each kept whole (a path may hold a comma)."""
    items = value if isinstance(value, list | tuple) else [value]
    return tuple(str(item) for item in items)


def flag(value: Any) -> bool:
    """An on/off option: True or False."""
    if not isinstance(value, bool):
        raise OptionError(f"takes True or False, not {value!r}")
    return value


#: ``loopbench run``'s options, by RunRequest field (the long option with ``_``):
#: how each value is read. ``loopbench run --help`` says what each one means.
RUN_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "workload": names,
    "loop": names,
    "model": sources,
    "device": device,
    "batch_size": positive_ints,
    "width": positive_ints,
    "steps_per_call": positive_ints,
    "precision": choices_of("precision", PRECISIONS),
    "fit_jit": choices_of("fit-jit", FIT_JIT_CHOICES),
    "strategy": strategies,
    "steps": positive_int,
    "windows": positive_int,
    "window_ms": positive_float,
    "warmup_steps": integer,
    "processes": positive_int,
    "quick": flag,
    "profile": flag,
    "data_size": positive_int,
    "data": text,
    "seed": integer,
    "threads": positive_int,
    "timeout": number,
    "start_method": one_of(START_METHODS),
    "out": text,
    "shard": shard,
    "report": flag,
    "epochs": positive_int,
    "wide": flag,
    "take_turns": integer,
}


def flag_of(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def make_request(**options: Any) -> RunRequest:
    """A RunRequest from ``loopbench run``'s options as keyword arguments (the long
    option with ``_``: ``batch_size=[32, 64]``, ``quick=True``, ``loop="fit,xla"``).
    None leaves an option at its default. Raises UsageError with the command line's
    one line for an unknown option or a bad value.

    Example::

        make_request(loop=["fit", "tf_function"], processes=3).loop  # ('fit', 'tf_function')
        make_request(batch_size=0)  # UsageError: argument --batch-size: 0 is not a positive integer
    """
    unknown = [(key, value) for key, value in options.items() if key not in RUN_OPTIONS]
    if unknown:  # worded as argparse words it, so the API and the command line agree
        words = [
            word
            for key, value in unknown
            for word in (flag_of(key), *([] if isinstance(value, bool) else [text_of(value)]))
        ]
        raise UsageError(f"unrecognized arguments: {' '.join(words)}")
    values = {}
    for key, value in options.items():
        if value is None:
            continue
        parse = RUN_OPTIONS[key]
        if isinstance(value, bool) and parse is not flag:
            raise UsageError(f"argument {flag_of(key)}: expected one argument")
        try:
            values[key] = parse(value)
        except OptionError as exc:
            raise UsageError(f"argument {flag_of(key)}: {exc}") from None
    return RunRequest(**values)
