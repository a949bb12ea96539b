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

from .writes_support import files_of, make_clan

INSTANCES = st.sampled_from(["hello", "demo", "extra", "Bad Name"])
ROLES = st.sampled_from(["morning", "evening", "server", "client", "nope"])
MACHINES = st.lists(st.sampled_from(["web", "db", "laptop", "ghost"]), max_size=2)
TAGS = st.lists(st.sampled_from(["server", "backup", "all", "missing"]), max_size=2)
SETTING_PATHS = st.sampled_from(["greeting", "port", "names", "tls.cert", "prot", "server"])
VALUES = st.one_of(
    st.integers(min_value=-5, max_value=70_000), st.text(max_size=8), st.booleans(), st.none(),
    st.lists(st.text(max_size=4), max_size=3), st.dictionaries(st.sampled_from(["cert", "key"]), st.text(max_size=4)),
)
TARGET = st.sampled_from([None, None, "web", "db"])

WRITES = st.one_of(
    st.tuples(st.just("create_instance"), st.fixed_dictionaries({
        "name": INSTANCES, "module": st.sampled_from(["hello-world", "demo", "nope"]),
        "input": st.sampled_from([None, "self"])})),
    st.tuples(st.just("delete_instance"), st.fixed_dictionaries({"name": INSTANCES})),
    st.tuples(st.sampled_from(["add_member", "remove_member"]), st.fixed_dictionaries({
        "instance": INSTANCES, "role": ROLES, "machines": MACHINES, "tags": TAGS})),
    st.tuples(st.just("set_setting"), st.fixed_dictionaries({
        "instance": INSTANCES, "role": ROLES, "path": SETTING_PATHS, "value": VALUES, "machine": TARGET,
        "force": st.booleans()})),
    st.tuples(st.just("unset_setting"), st.fixed_dictionaries({
        "instance": INSTANCES, "role": ROLES, "path": SETTING_PATHS, "machine": TARGET})),
    st.tuples(st.just("set_machine"), st.fixed_dictionaries({
        "name": st.sampled_from(["web", "db", "ghost"]),
        "description": st.one_of(st.none(), st.text(max_size=6)),
        "tags": st.one_of(st.none(), st.lists(st.sampled_from(["server", "backup", "x"]), max_size=2)),
        "target_host": st.sampled_from([None, "", "root@web", "-oProxyCommand=x"])})),
    st.tuples(st.just("set_meta"), st.fixed_dictionaries({
        "description": st.one_of(st.none(), st.text(max_size=6)),
        "domain": st.sampled_from([None, "", "example.org", "Not Valid"])})),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(writes=st.lists(WRITES, min_size=1, max_size=5))
def test_random_writes_are_applied_and_valid_or_refused_unchanged(writes: list[tuple[str, dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_clan(Path(tmp) / "clan")
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
