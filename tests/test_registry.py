"""The registries: decorator fills them, duplicates are errors, unknown names list choices."""

from __future__ import annotations

import pytest

from loops.registry import Registry, UnknownNameError


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
    import loops.styles  # noqa: F401
    import loops.workloads  # noqa: F401
    from loops.base import LOOPS, WORKLOADS

    assert WORKLOADS.names() == ["linear", "mlp", "gan"]
    assert LOOPS.names() == ["fit", "eager", "tf_function", "tf_data", "xla"]
