import pytest

from samlens.errors import ConfigError
from samlens.registry import Registry


def test_registry_lists_valid_choices_on_unknown_name():
    reg: Registry[int] = Registry("widget")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.names() == ["a", "b"]
    assert reg.get("a") == 1
    with pytest.raises(ConfigError, match=r"unknown widget 'c'; valid choices: a, b"):
        reg.get("c")


def test_registry_refuses_duplicates():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(2)


def test_options_lists_what_follows_the_leading_arguments():
    from samlens.registry import Registry

    reg: Registry = Registry("thing")

    @reg.register("a")
    def make(root, seed=0, *, width: int = 3, depth, **extra):
        return None

    import inspect

    assert reg.options("a", ("root", "seed")) == {"width": 3, "depth": inspect.Parameter.empty}
