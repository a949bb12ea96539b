"""What `vars generate` runs, in which order, and how it fails (R12.5, R12.6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyclan.config.validation_hash import validation_hash
from pyclan.errors import ClanError
from pyclan.vars.api import check, decrypt_secret, generate, get
from pyclan.vars.context import VarsContext
from pyclan.vars.layout import GenKey

from .conftest import ANSWERS, VarsClan


def counter(vclan: VarsClan, monkeypatch: pytest.MonkeyPatch) -> Path:
    path: Path = vclan.dir.parent / "runs.txt"
    monkeypatch.setenv("VARTEST_COUNTER", str(path))
    return path


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_dependency_order_and_shared_generator_runs_once(
    vclan: VarsClan, answers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = counter(vclan, monkeypatch)
    report = generate(vclan.open(), prompt_values=answers)
    order = report.generated
    assert order.count("shared/ca") == 1
    assert runs(log).count("ca None") == 1  # a shared generator gets machine None
    assert sorted(order) == sorted(
        ["shared/ca", *(f"{m}/{g}" for m in "ab" for g in ("wg", "cert", "token", "local", "pw")), "c/solo-key"]
    )
    for m in "ab":
        assert order.index(f"{m}/cert") > order.index(f"{m}/wg")
        assert order.index(f"{m}/cert") > order.index("shared/ca")
    # the script saw its dependencies' values under $in/<dep>/<file>
    clan = vclan.open()
    wg_pub = get(clan, "a", "wg/pub")[1].decode()
    ca_cert = get(clan, "b", "ca/cert")[1].decode()
    assert get(clan, "a", "cert/cert")[1].decode() == f"cert for {wg_pub} signed by {ca_cert}"
    assert decrypt_secret(clan, "a", "ca", "key") == decrypt_secret(clan, "b", "ca", "key")
    # a second run has nothing to do
    assert generate(vclan.open()).generated == []
    assert runs(log).count("ca None") == 1


def test_evaluation_reads_public_values_and_asks_for_generation_first(vclan: VarsClan, answers: Path) -> None:
    with pytest.raises(ClanError) as err:
        vclan.open().evaluator.config("a")
    assert "has not been generated yet" in str(err.value) and "pyclan vars generate" in str(err.value)
    generate(vclan.open(), prompt_values=answers)
    clan = vclan.open()
    config = clan.evaluator.config("a")
    peers = config.files["/etc/vartest/peers"].content
    assert get(clan, "b", "wg/pub")[1].decode() in peers
    assert config.files["/etc/vartest/key-path"].content == "/var/lib/pyclan/secrets/wg/priv"
    assert "/var/lib/pyclan/secrets/wg/priv" in config.secrets
    assert "/var/lib/pyclan/secrets/local/note" not in config.secrets  # deploy = False


def test_generating_one_machine_runs_dependents_across_machines(
    vclan: VarsClan, answers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = generate(vclan.open(), ["a"], prompt_values=answers)
    # b's cert depends on the shared ca (a new value): it runs too, after b's missing wg
    assert report.generated == ["shared/ca", "a/local", "a/pw", "a/token", "a/wg", "a/cert", "b/wg", "b/cert"]
    assert not (vclan.dir / "vars/per-machine/b/token").exists()
    # deleting the shared ca and generating for c (not a mesh member) does nothing to it ...
    import shutil

    shutil.rmtree(vclan.dir / "vars/shared/ca")
    assert "shared/ca" not in generate(vclan.open(), ["c"]).generated
    # ... generating for b re-creates it and re-runs every dependent on every machine that has it
    report = generate(vclan.open(), ["b"], prompt_values=answers)
    assert report.generated == ["shared/ca", "a/cert", "b/cert", "b/local", "b/pw", "b/token"]
    report = generate(vclan.open(), ["a"], generators=["ca"])
    assert report.generated == ["shared/ca", "a/cert", "b/cert"]


def test_regenerate_and_generator_flag(vclan: VarsClan, answers: Path) -> None:
    generate(vclan.open(), prompt_values=answers)
    clan = vclan.open()
    old = {m: decrypt_secret(clan, m, "token", "token") for m in "ab"}
    old_wg = decrypt_secret(clan, "a", "wg", "priv")
    # -g re-runs a complete generator (only on the requested machines) plus its dependents
    report = generate(vclan.open(), ["a"], generators=["wg"])
    assert report.generated == ["a/wg", "a/cert"]
    assert decrypt_secret(vclan.open(), "a", "wg", "priv") != old_wg
    # --regenerate runs everything of the machine again; the persisted prompt is reused (no TTY)
    report = generate(vclan.open(), ["b"], regenerate=True)
    assert set(report.generated) >= {"shared/ca", "b/wg", "b/cert", "b/token", "b/pw", "a/cert"}
    clan = vclan.open()
    assert decrypt_secret(clan, "b", "token", "token") != old["b"]
    assert decrypt_secret(clan, "a", "token", "token") == old["a"]
    assert decrypt_secret(clan, "b", "pw", "password") == ANSWERS["pw"]["password"].encode()
    with pytest.raises(ClanError) as err:
        generate(vclan.open(), generators=["wgg"])
    assert "Generator(s) 'wgg' not found in machines ['a', 'b', 'c']" in str(err.value)
    assert "did you mean 'wg'" in str(err.value)


def test_changed_definition_makes_vars_outdated(vclan: VarsClan, answers: Path) -> None:
    generate(vclan.open(), prompt_values=answers)
    old = decrypt_secret(vclan.open(), "a", "token", "token")
    assert len(old) == 32  # 16 bytes as hex
    vclan.configure(settings={"size": 24})  # changes the token generator's script
    report = check(vclan.open())
    assert {(i.kind, i.var) for i in report.issues} == {("outdated", "a/token"), ("outdated", "b/token")}
    report_gen = generate(vclan.open())
    assert report_gen.generated == ["a/token", "b/token"]
    new = decrypt_secret(vclan.open(), "a", "token", "token")
    assert len(new) == 48 and new != old
    assert check(vclan.open()).ok


def test_validation_hash_covers_the_definition_not_placement_details() -> None:
    from pyclan.config.generators import Generator, Prompt, VarFile

    base = Generator("g", files={"f": VarFile()}, script="echo 1 > $out/f")
    same = Generator("g", files={"f": VarFile(mode="0440", owner="x", deploy=False)}, script="echo 1 > $out/f")
    assert validation_hash(base) == validation_hash(same)
    for changed in (
        Generator("g", files={"f": VarFile(secret=False)}, script="echo 1 > $out/f"),
        Generator("g", files={"f": VarFile()}, script="echo 2 > $out/f"),
        Generator("g", files={"f": VarFile()}, script="echo 1 > $out/f", validation={"v": 2}),
        Generator("g", files={"f": VarFile()}, script="echo 1 > $out/f", dependencies=("d",)),
        Generator("g", files={"f": VarFile()}, script="echo 1 > $out/f", prompts={"p": Prompt()}),
    ):
        assert validation_hash(changed) != validation_hash(base)

    def one(inp: object) -> dict[str, str]:
        return {"f": "1"}

    def two(inp: object) -> dict[str, str]:
        return {"f": "2"}

    assert validation_hash(Generator("g", files={"f": VarFile()}, run=one)) != validation_hash(
        Generator("g", files={"f": VarFile()}, run=two)  # type: ignore[arg-type]
    )


def test_missing_declared_file_is_an_error_and_writes_nothing(vclan: VarsClan, answers: Path) -> None:
    vclan.configure(settings={"forgetful": True})
    with pytest.raises(ClanError) as err:
        generate(vclan.open(), prompt_values=answers)
    problem = err.value.problems[0]
    assert problem.kind == "vars-error"
    assert "generator 'forgetful' of machine 'a' did not generate a file for 'b'" in problem.message
    assert problem.path == "a/forgetful/b"
    assert not (vclan.dir / "vars/per-machine/a/forgetful").exists()
    # the generator that ran before it (shared/ca, first in order) is stored and complete
    assert VarsContext.of(vclan.open()).status(GenKey("ca")).complete


def test_cycle_is_an_error_naming_it(vclan: VarsClan) -> None:
    vclan.configure(settings={"cycle": True})
    with pytest.raises(ClanError) as err:
        generate(vclan.open())
    assert "generators depend on each other in a cycle: a/c1 -> a/c2 -> a/c1" in str(err.value)
    assert not (vclan.dir / "vars").exists()


def test_prompt_values_file_forms_and_errors(vclan: VarsClan, tmp_path: Path) -> None:
    values = tmp_path / "v.json"
    values.write_text(json.dumps({"pw": {"password": "for everyone"}, "b/pw": {"password": "only for b"}}))
    generate(vclan.open(), prompt_values=values)
    clan = vclan.open()
    assert decrypt_secret(clan, "a", "pw", "password") == b"for everyone"
    assert decrypt_secret(clan, "b", "pw", "password") == b"only for b"
    import hashlib

    assert get(clan, "b", "pw/hash")[1].decode().strip() == hashlib.sha256(b"only for b").hexdigest()
    # a persisted answer is reused silently; a new answer in the file replaces it with -g
    values.write_text(json.dumps({"a/pw": {"password": "changed"}}))
    generate(vclan.open(), ["a"], generators=["pw"], prompt_values=values)
    assert decrypt_secret(vclan.open(), "a", "pw", "password") == b"changed"
    # typos are errors, not silently ignored answers
    values.write_text(json.dumps({"pww": {"password": "x"}}))
    with pytest.raises(ClanError, match="no generator 'pww'"):
        generate(vclan.open(), prompt_values=values)
    values.write_text(json.dumps({"pw": {"pasword": "x"}}))
    with pytest.raises(ClanError, match="has no prompt 'pasword'"):
        generate(vclan.open(), prompt_values=values)
    values.write_text("{not json")
    with pytest.raises(ClanError, match="invalid JSON"):
        generate(vclan.open(), prompt_values=values)


def test_no_answer_without_terminal_fails_before_writing(vclan: VarsClan) -> None:
    with pytest.raises(ClanError) as err:
        generate(vclan.open())
    text = str(err.value)
    assert "needs an answer for prompt 'password'" in text and "--prompt-values" in text
    assert not (vclan.dir / "vars").exists()


def test_unknown_dependency_and_no_admin(vclan: VarsClan, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyclan.config.generators import Generator, VarFile
    from pyclan.config.machine_config import Origin
    from pyclan.vars.view import DeclaredGenerator

    origin = Origin(service="t")
    declared = {"m": {"x": DeclaredGenerator(Generator("x", files={"f": VarFile()}, dependencies=("yy",)), origin),
                      "y": DeclaredGenerator(Generator("y", files={"f": VarFile()}), origin)}}
    with pytest.raises(ClanError, match="depends on 'yy', which no machine declares"):
        _ = VarsContext(vclan.dir, declared).graph
    (vclan.dir / "keys/admins/alice.pub").unlink()
    vclan.configure(settings={"prompt": False})
    with pytest.raises(ClanError) as err:
        generate(vclan.open())
    assert "the clan has no admin keys" in str(err.value) and "pyclan vars keygen" in str(err.value)


def test_constraint_checks_block_generation(vclan: VarsClan) -> None:
    # the service allows at most one "solo" machine per instance in this variant
    service = vclan.dir / "services" / "vartest.py"
    service.write_text(service.read_text().replace(
        'service = Service("vartest", description="Generators for the vars engine\'s tests")',
        "from pyclan.services.service import Constraints, RoleConstraint\n"
        'service = Service("vartest", description="x", '
        'constraints=Constraints(roles={"solo": RoleConstraint(max_machines=1)}))',
    ))
    vclan.configure(solo=("c", "d"), settings={"prompt": False})
    with pytest.raises(ClanError) as err:
        generate(vclan.open())
    assert "Inventory checks failed" in str(err.value)
    report = generate(vclan.open(), no_check=True)
    assert "d/solo-key" in report.generated
    assert VarsContext.of(vclan.open()).status(GenKey("solo-key", "d")).complete


def test_shared_generator_declared_differently_is_an_error(vclan: VarsClan) -> None:
    vclan.configure(machine_settings={"a": {}, "b": {"ca_version": 2}})
    with pytest.raises(ClanError) as err:
        generate(vclan.open())
    message = err.value.problems[0].message
    assert "Machines a and b have different definitions for shared generator 'ca'" in message
    assert "differ in: validation;" in message
