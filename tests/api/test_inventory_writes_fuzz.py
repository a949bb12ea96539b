"""Random sequences of inventory writes: each is applied and leaves a valid clan, or is refused and
leaves every file byte for byte as it was."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyclan import api
from pyclan.errors import ClanError

from .writes_support import VARIANTS, files_of, make_clan

# (instance, role): mostly ones that exist (or that `create_instance` below can create), some not
ROLE_OF = st.sampled_from([
    ("hello", "morning"), ("hello", "evening"), ("demo", "server"), ("demo", "client"),
    ("extra", "morning"), ("extra", "evening"), ("hello", "nope"), ("ghost", "server"),
])
MACHINE = st.sampled_from(["web", "db", "laptop", "laptop", "ghost"])
TAG = st.sampled_from(["server", "backup", "all", "missing"])
# a settings path of the role with a value that is mostly valid for it
SETTING = {
    "morning": st.tuples(st.just("greeting"), st.one_of(st.text(max_size=6), st.integers(0, 3))),
    "evening": st.tuples(st.just("greeting"), st.one_of(st.text(max_size=6), st.booleans())),
    "server": st.one_of(
        st.tuples(st.just("port"), st.integers(min_value=-5, max_value=70_000)),
        st.tuples(st.just("names"), st.lists(st.text(max_size=4), max_size=3)),
        st.tuples(st.just("tls.cert"), st.one_of(st.text(max_size=4), st.none())),
        st.tuples(st.just("prot"), st.integers(1, 9)),
    ),
    "client": st.tuples(st.just("server"), st.one_of(st.text(max_size=6), st.integers(0, 3))),
    "nope": st.tuples(st.just("x"), st.integers(0, 3)),
}
BLOCK = st.sampled_from([{}, {}, {"machine": "web"}, {"machine": "laptop"}, {"tag": "backup"}, {"tag": "missing"}])


@st.composite
def setting_write(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    instance, role = draw(ROLE_OF)
    path, value = draw(SETTING[role])
    args = {"instance": instance, "role": role, "path": path, **draw(BLOCK)}
    if draw(st.integers(0, 3)) == 0:
        return "unset_setting", args
    flags = draw(st.sampled_from([{}, {}, {"force": True}, {"default": True}]))
    return "set_setting", {**args, "value": value, **flags}


@st.composite
def member_write(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    instance, role = draw(ROLE_OF)
    machines = draw(st.lists(MACHINE, max_size=2))
    tags = draw(st.lists(TAG, max_size=1))
    return draw(st.sampled_from(["add_member", "add_member", "remove_member"])), {
        "instance": instance, "role": role, "machines": machines, "tags": tags}


WRITES = st.one_of(
    st.tuples(st.just("create_instance"), st.fixed_dictionaries({
        "name": st.sampled_from(["extra", "extra", "hello", "Bad Name"]),
        "module": st.sampled_from(["hello-world", "hello-world", "demo", "nope"])})),
    st.tuples(st.just("delete_instance"), st.fixed_dictionaries({"name": st.sampled_from(["extra", "demo", "ghost"])})),
    member_write(), member_write(), setting_write(), setting_write(), setting_write(),
    st.tuples(st.just("set_machine"), st.fixed_dictionaries({
        "name": st.sampled_from(["web", "laptop", "ghost"]),
        "description": st.one_of(st.none(), st.text(max_size=6)),
        "tags": st.one_of(st.none(), st.lists(st.sampled_from(["server", "backup", "x"]), max_size=2)),
        "target_host": st.sampled_from([None, "", "root@web", "-oProxyCommand=x"])})),
    st.tuples(st.just("set_meta"), st.fixed_dictionaries({
        "description": st.one_of(st.none(), st.text(max_size=6)),
        "domain": st.sampled_from([None, "", "example.org", "Not Valid"])})),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(sorted(VARIANTS)), writes=st.lists(WRITES, min_size=1, max_size=5))
def test_random_writes_are_applied_and_valid_or_refused_unchanged(
    variant: str, writes: list[tuple[str, dict[str, Any]]]
) -> None:
    toml, inventory_json = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        root = make_clan(Path(tmp) / "clan", toml, inventory_json)
        assert api.check_clan(str(root)).ok
        for name, args in writes:
            before = files_of(root)
            try:
                result = getattr(api, name)(**args, flake=str(root))
            except ClanError as err:
                assert err.problems
                assert files_of(root) == before, (name, args)
                continue
            assert result.changed == (files_of(root) != before)
            report = api.check_clan(str(root))
            assert report.ok and not report.errors, (name, args, report.errors)
