"""The docs: a short front page whose links land, and reference pages that match the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import docs_pages
import pytest
import typer

from api.app import create_app
from cli.app import app as cli_app
from features.catalogue import catalogue_markdown
from features.policy import policy_markdown
from triage.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)\s]+)\)")
PACKAGES = tuple(docs_pages.PACKAGES)


def _pages() -> list[Path]:
    """README.md and every written page of the site."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _relative_links(page: Path) -> list[str]:
    """The links of ``page`` that point inside the repository (no scheme, no bare anchor)."""
    return [
        link.split("#")[0]
        for link in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in link and not link.startswith(("#", "mailto:"))
    ]


def test_readme_is_a_front_page_whose_links_land():
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 150
    generated = {DOCS / path for path in docs_pages.GENERATED_PATHS}
    links = _relative_links(readme)
    assert links
    missing = [
        link for link in links if not (ROOT / link).exists() and (ROOT / link) not in generated
    ]
    assert not missing, f"README links to nothing: {missing}"


def test_every_docs_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    written = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    pages = written | {p for p in docs_pages.GENERATED_PATHS if p.endswith(".md")}
    assert not [p for p in sorted(pages) if f": {p}" not in nav]


_PATH = re.compile(r"`((?:triage|features|models|explain|api|scripts|tests|bench)/[\w/.]*)`")
_DOTTED = re.compile(r"`((?:triage|features|models|explain|api)(?:\.\w+)+)(?![\w-])")


def test_code_named_in_the_docs_exists():
    # Paths and dotted names in the prose must follow the code when it moves.
    stale = []
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        for path in _PATH.findall(text):
            if not (ROOT / path).exists():
                stale.append(f"{page.relative_to(ROOT)}: {path}")
        for dotted in _DOTTED.findall(text):
            if not _resolves(dotted):
                stale.append(f"{page.relative_to(ROOT)}: {dotted}")
    assert not stale, "docs name code that is not there:\n" + "\n".join(sorted(set(stale)))


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` is a module, or an attribute reachable from the longest module."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_every_setting_is_documented():
    settings_page = (DOCS / "operations" / "settings.md").read_text(encoding="utf-8")
    undocumented = [
        f"TRIAGE_{name.upper()}"
        for name in Settings.model_fields
        if f"`TRIAGE_{name.upper()}`" not in settings_page
    ]
    assert not undocumented


def _commands(group: typer.main.TyperGroup, prefix: str = "triage") -> list[str]:
    """Every command path of the click group, e.g. ``triage users add``."""
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        paths.append(path)
        if isinstance(command, typer.main.TyperGroup):
            paths += _commands(command, path)
    return paths


def test_cli_page_names_every_command():
    page = docs_pages.cli_markdown()
    commands = _commands(typer.main.get_command(cli_app))
    assert "triage users set-password" in commands
    assert not [c for c in commands if f"`{c}`" not in page]


def test_http_api_page_lists_every_operation():
    spec = create_app(Settings(var_dir=Path("unused")), scorer_loader=lambda: None).openapi()
    page = docs_pages.openapi_markdown(spec)
    operations = [
        f"| `{method.upper()}` | `{path}` |"
        for path, item in spec["paths"].items()
        for method in item
    ]
    assert len(operations) > 15
    assert not [op for op in operations if op not in page]
    assert '<swagger-ui src="openapi.json"/>' in page


def test_signal_page_is_the_catalogue_and_the_policy():
    page = docs_pages.signals_markdown()
    assert catalogue_markdown() in page
    assert policy_markdown() in page


@pytest.mark.parametrize("package", PACKAGES)
def test_python_reference_covers_every_public_module(package):
    page = docs_pages.python_reference_markdown(package)
    modules = docs_pages.python_modules(package)
    assert modules
    assert all(f"::: {module}\n" in page for module in modules)
    for module in modules:
        importlib.import_module(module)
