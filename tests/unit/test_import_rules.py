"""The shape of the code, read from its imports (docs/architecture.md): each top-level package imports only the
layers below it, nothing but the composition root (``bootstrap``) imports it, and the platform imports no
domain. Every ``import`` statement counts, at module level or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "ml", "infra", "producers", "consumers", "api", "bootstrap")
MAY_IMPORT: dict[str, set[str]] = {
    "schemas": {"schemas"},
    "ml": {"schemas", "ml"},
    "infra": {"schemas", "infra"},
    "producers": {"schemas", "infra", "producers"},
    "consumers": {"schemas", "ml", "infra", "producers", "consumers"},
    "api": {"schemas", "ml", "infra", "producers", "api"},
    "bootstrap": set(PACKAGES),
}
"""``api`` may use ``ml``'s pure code (validation, comparisons) in the request; it never imports ``consumers``."""
DOMAINS = ("tabular", "lotto", "rl", "canary")
DOMAIN_SCHEMAS = {
    "schemas.tabular": "tabular",
    "schemas.data": "tabular",
    "schemas.batch_scoring": "tabular",
    "schemas.lotto": "lotto",
    "schemas.rl": "rl",
    "schemas.deploy": "canary",
}
"""schema modules that belong to one domain (the others: envelope, common, jobs, rpc, topics, auth)"""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def domain_of(module: str) -> str | None:
    for prefix, domain in DOMAIN_SCHEMAS.items():
        if module == prefix or module.startswith(prefix + "."):
            return domain
    parts = module.split(".")
    return next((p for p in parts[1:] if p in DOMAINS), None)


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] in PACKAGES]


def ours() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def violations() -> list[str]:
    found: list[str] = []
    for path in ours():
        me = module_name(path)
        layer, my_domain = me.split(".")[0], domain_of(me)
        for line, target in imports(path):
            top = target.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if top not in MAY_IMPORT[layer]:
                found.append(f"layer: {where}")
            their_domain = domain_of(target)
            if layer != "bootstrap" and my_domain is None and their_domain is not None:
                found.append(f"platform imports domain {their_domain}: {where}")
    return sorted(set(found))


def test_every_package_is_checked() -> None:
    assert {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests"} == set(PACKAGES)


def test_layers_and_domains_follow_the_import_rules() -> None:
    problems = violations()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("domain", DOMAINS)
def test_each_domain_is_declared_once_and_listed(domain: str) -> None:
    declaration = ROOT / "bootstrap" / "domains" / f"{domain}.py"
    assert declaration.exists()
    listing = (ROOT / "bootstrap" / "domains" / "__init__.py").read_text()
    assert f"{domain}.DOMAIN" in listing
