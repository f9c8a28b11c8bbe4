"""The registries: decorator fills them, duplicates are errors, unknown names list choices;
the loop styles declare one ladder, the one the run directories record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tf_loopbench.loops.registry import LoopRegistry, Registry, UnknownNameError

GOLDEN_METADATA = Path(__file__).parent / "fixtures" / "golden" / "current" / "metadata.json"


def test_register_get_and_order():
    registry: Registry[type] = Registry("thing")

    @registry.register("b")
    class B:
        pass

    @registry.register("a")
    class A:
        pass

    assert registry.names() == ["b", "a"]
    assert registry.get("a") is A and A.name == "a"
    assert "b" in registry and len(registry) == 2


def test_duplicate_name_is_an_error():
    registry: Registry[type] = Registry("thing")
    registry.register("x")(type("X", (), {}))
    with pytest.raises(ValueError, match="duplicate thing name 'x'"):
        registry.register("x")(type("Y", (), {}))


def test_unknown_name_lists_choices_in_one_line():
    registry: Registry[type] = Registry("loop")
    registry.register("eager")(type("E", (), {}))
    with pytest.raises(UnknownNameError) as info:
        registry.get("eagre")
    assert str(info.value) == "unknown loop 'eagre'; choose from: eager"


def test_snapshot_restore():
    registry: Registry[type] = Registry("thing")
    registry.register("x")(type("X", (), {}))
    saved = registry.snapshot()
    registry.register("y")(type("Y", (), {}))
    registry.restore(saved)
    assert registry.names() == ["x"]


def test_seed_registries_are_filled():
    import tf_loopbench.loops.styles  # noqa: F401
    import tf_loopbench.loops.workloads  # noqa: F401
    from tf_loopbench.loops.base import LOOPS, WORKLOADS

    assert WORKLOADS.names() == ["linear", "mlp", "gan"]
    assert LOOPS.names() == ["fit", "eager", "tf_function", "tf_data", "xla"]


def test_the_loop_styles_declare_one_ladder_of_single_changes():
    import tf_loopbench.loops.styles  # noqa: F401
    from tf_loopbench.loops.base import LOOPS

    ladder = LOOPS.ladder()
    assert json.loads(json.dumps(ladder)) == ladder  # JSON as it is
    assert ladder["reference"] == "fit"
    pairs = [(rung["loop"], rung["compares_with"], rung["changes"]) for rung in ladder["rungs"]]
    assert [loop for loop, _, _ in pairs] == LOOPS.names()  # registration order
    assert pairs[2:] == [
        ("tf_function", "eager", "graph mode"),
        ("tf_data", "tf_function", "the input"),
        ("xla", "tf_data", "the compiler"),  # neighbours: one change each, never two
    ]
    assert pairs[1][1] is None  # eager: compared with the reference only
    assert [rung["reference"] for rung in ladder["rungs"]] == [True, False, False, False, False]
    # what benchmarks writes is what the stored golden runs hold
    assert ladder == json.loads(GOLDEN_METADATA.read_text())["ladder"]


def _style(reference=False, compares_with=None, changes="one thing"):
    return type(
        "Style", (), {"reference": reference, "compares_with": compares_with, "changes": changes}
    )


@pytest.mark.parametrize(
    ("styles", "message"),
    [
        ({"a": _style(), "b": _style()}, "exactly one loop must be the reference, found 0"),
        ({"a": _style(True), "b": _style(True)}, "found 2 (a, b)"),
        (
            {"a": _style(True), "b": _style(compares_with="c"), "c": _style()},
            "'b' compares with 'c', which is not registered before it",
        ),
        ({"a": _style(True, changes="")}, "'a' declares no 'changes'"),
    ],
)
def test_a_ladder_that_does_not_hold_together_is_an_error(styles, message):
    registry: LoopRegistry[type] = LoopRegistry("loop")
    for name, style in styles.items():
        registry.register(name)(style)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.ladder()
