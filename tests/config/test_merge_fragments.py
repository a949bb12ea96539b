"""Merging fragments: equal definitions agree, different ones conflict naming both origins."""

from __future__ import annotations

from pyclan.config.machine_config import MachineConfig, Origin, SecretFileSpec
from pyclan.config.merge import merge_fragments

A, B, C = Origin("a", "i", "r"), Origin("b"), Origin("c", "j", "s")


def test_equal_definitions_merge_and_packages_are_a_sorted_set() -> None:
    one = MachineConfig().file("/etc/x", "same\n").package("zsh", "git")
    two = MachineConfig().file("/etc/x", "same\n").file("/etc/y", "y\n").package("git")
    merged, problems = merge_fragments("m", [(A, one), (B, two)])
    assert problems == []
    assert sorted(merged.files) == ["/etc/x", "/etc/y"] and merged.packages == ["git", "zsh"]


def test_different_definitions_conflict_naming_the_first_definer() -> None:
    first = MachineConfig().file("/etc/x", "one\n")
    other = MachineConfig().file("/etc/y", "y\n")
    clash = MachineConfig().file("/etc/x", "two\n")
    _, problems = merge_fragments("m", [(A, first), (B, other), (C, clash)])
    (p,) = problems
    assert p.kind == "config-conflict" and p.path == "machines.m.files./etc/x"
    assert "service 'a', instance 'i', role 'r'" in p.message and "service 'c', instance 'j', role 's'" in p.message


def test_users_merge_their_groups_and_conflict_on_other_fields() -> None:
    one = MachineConfig().user("alice", groups=["wheel"])
    two = MachineConfig().user("alice", groups=["audio"], shell="/bin/zsh")
    merged, problems = merge_fragments("m", [(A, one), (B, two)])
    assert problems == [] and merged.users["alice"].groups == ("wheel", "audio")
    assert merged.users["alice"].shell == "/bin/zsh"
    three = MachineConfig().user("alice", shell="/bin/bash")
    _, problems = merge_fragments("m", [(A, two), (C, three)])
    assert [p.message.endswith("(field 'shell')") for p in problems] == [True]


def test_a_file_and_a_secret_at_one_path_conflict() -> None:
    secret = MachineConfig()
    secret.secrets["/etc/x"] = SecretFileSpec(path="/etc/x", generator="g", file="f")
    _, problems = merge_fragments("m", [(A, MachineConfig().file("/etc/x", "x")), (B, secret)])
    (p,) = problems
    assert "(file and secret)" in p.message and "service 'a'" in p.message and "service 'b'" in p.message
