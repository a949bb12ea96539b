"""The config builders construct without pydantic's pass but check what it would have checked."""

from __future__ import annotations

import pytest

from pyclan.config.machine_config import FileSpec, MachineConfig


def test_fast_built_config_equals_the_validated_one() -> None:
    fast = MachineConfig().file("/etc/a", "x\n", mode="0600", owner="app", group="app").package("p")
    slow = MachineConfig.model_validate(
        {"files": {"/etc/a": {"path": "/etc/a", "content": "x\n", "mode": "0600", "owner": "app", "group": "app"}},
         "packages": ["p"]}
    )  # fmt: skip
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.files["/etc/a"] == FileSpec(path="/etc/a", content="x\n", mode="0600", owner="app", group="app")
    assert MachineConfig() == MachineConfig.model_validate({}) and MachineConfig().is_empty()
    with pytest.raises(Exception, match="frozen"):
        fast.files["/etc/a"].content = "y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("etc/a", "x"), {}, "must be absolute"),
        (("/etc/a", 1), {}, "content must be a string"),
        (("/etc/a", "x"), {"mode": "999"}, "octal"),
        (("/etc/a", "x"), {"mode": 644}, "octal"),
        (("/etc/a", "x"), {"owner": None}, "owner must be a string"),
    ],
)
def test_builders_refuse_what_validation_would(
    args: tuple[object, ...], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        MachineConfig().file(*args, **kwargs)  # type: ignore[arg-type]
