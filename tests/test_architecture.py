"""The dependency arrows the architecture page draws are the ones ``lint-imports`` enforces.

``docs/architecture.md`` lists, for every package of the platform, the packages it may import;
``.importlinter`` forbids each package every other one. This test reads both: a package the page
allows must not be forbidden, and one it does not allow must be, so the page cannot drift from
the contracts (and ``lint-imports``, in ``make test``, holds the code to them)."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(
    r"<!-- dependencies: checked by tests/test_architecture.py -->\s*```text\n(.*?)```", re.S
)


def _contracts() -> tuple[set[str], dict[str, set[str]]]:
    """The root packages, and for each the root packages some forbidden contract keeps from it."""
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    roots = set(config["importlinter"]["root_packages"].split())
    forbidden: dict[str, set[str]] = {root: set() for root in roots}
    for name in config.sections():
        contract = config[name]
        if not name.startswith("importlinter:contract:") or contract.get("type") != "forbidden":
            continue
        assert contract.get("allow_indirect_imports", "False") == "False", name
        for source in contract["source_modules"].split():
            if source in roots:
                forbidden[source] |= set(contract["forbidden_modules"].split()) & roots
    return roots, forbidden


def _documented() -> dict[str, set[str] | None]:
    """For each package on the page, the packages it may import (``None``: every one)."""
    match = _BLOCK.search((ROOT / "docs" / "architecture.md").read_text())
    assert match, "docs/architecture.md has no dependency list"
    arrows: dict[str, set[str] | None] = {}
    for line in match.group(1).splitlines():
        if not line.strip():
            continue
        package, arrow, targets = line.partition("->")
        assert arrow, f"not an arrow: {line!r}"
        words = targets.split("#")[0].replace(",", " ").split()
        if words == ["everything"]:
            arrows[package.strip()] = None
        else:
            arrows[package.strip()] = set() if words == ["nothing"] else set(words)
    return arrows


def test_every_package_is_on_the_page() -> None:
    roots, _ = _contracts()
    assert set(_documented()) == roots


def _reach(arrows: dict[str, set[str] | None], package: str) -> set[str]:
    """What ``package`` imports directly, and what those import, and so on."""
    seen: set[str] = set()
    todo = [package]
    while todo:
        for target in arrows[todo.pop()] or ():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_page_and_the_contracts_draw_the_same_arrows() -> None:
    roots, forbidden = _contracts()
    arrows = _documented()
    for package, allowed in arrows.items():
        if allowed is None:
            assert forbidden[package] == set(), package
            continue
        assert allowed <= roots, f"{package} -> {allowed - roots}: not packages of the platform"
        assert forbidden[package] == roots - _reach(arrows, package) - {package}, package


def test_nothing_imports_the_composition_root() -> None:
    roots, forbidden = _contracts()
    everything = [p for p, allowed in _documented().items() if allowed is None]
    assert everything == ["server"]
    for package in roots - {"server"}:
        assert "server" in forbidden[package], package
