"""The documentation site's generated pages, rendered from the code itself.

``scripts/gen_docs.py`` writes them into the site at build time (mkdocs-gen-files), so the
command-line, HTTP API, signal and Python references can never drift from the code; the tests
import these functions to check what the pages hold.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PACKAGES: dict[str, str] = {
    "triage": "The domain core: vocabularies, intake schema, settings, store, synthetic world, "
    "queue rules, accounts and the audit log.",
    "features": "The signal catalogue, the priority policy and the batch and online builders.",
    "models": "Splits, model families, calibration, evaluation, gates, tracking, the scorer "
    "and the fairness audit.",
    "explain": "Reasons with provenance, what-if, global views, plots and what the model "
    "does not know.",
    "service": "The service layer with no HTTP in it: intake, scoring, casework, views, the "
    "champion model, research extracts and the audit writer.",
    "api": "The FastAPI service: app factory, routes, dependencies, errors and pages.",
    "serving": "The supervisor: listens once and hands the socket to worker processes.",
}
"""The packages of the Python reference, in layer order, with one line on each."""

GENERATED_PATHS: tuple[str, ...] = (
    "reference/cli.md",
    "reference/http-api.md",
    "reference/openapi.json",
    "reference/signals.md",
    *(f"reference/python/{package}.md" for package in PACKAGES),
)
"""The pages that exist only in the built site, by their path inside it."""

SKIPPED_MODULE_PARTS: frozenset[str] = frozenset({"migrations", "data", "cli"})
"""Left out of the Python reference: migrations and data files, and the command line, which
has its own generated page."""


def cli_markdown() -> str:
    """The ``triage`` command line as Markdown, every command and option from the typer app."""
    import typer
    from typer.cli import get_docs_for_click

    from cli.app import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="triage")
    body = get_docs_for_click(obj=command, ctx=ctx, name="triage", title="Command line")
    intro = (
        "Generated from the typer app (`cli.app.app`) at every build; "
        "`triage --help` and `triage COMMAND --help` print the same.\n\n"
    )
    title, _, rest = body.strip().partition("\n")
    return f"{title}\n\n{intro}{rest.strip()}\n"


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI document, as ``GET /openapi.json`` serves it."""
    from api.app import create_app
    from triage.settings import Settings

    with tempfile.TemporaryDirectory() as var_dir:
        # No model and a throwaway var dir: building the document touches neither.
        app = create_app(Settings(var_dir=Path(var_dir)), scorer_loader=lambda: None)
        return app.openapi()


def openapi_markdown(spec: dict[str, Any]) -> str:
    """A page summarising every operation of ``spec`` and embedding it in Swagger UI."""
    info = spec.get("info", {})
    lines = [
        "# HTTP API",
        "",
        f"{info.get('title', 'triage')} {info.get('version', '')}: the OpenAPI document "
        "generated from the FastAPI app (`api.app.create_app().openapi()`) at every build; "
        "download it as [openapi.json](openapi.json). A running service serves the same "
        "document at `/openapi.json` and interactive docs at `/docs` and `/redoc`. What "
        "each route does, who may call it and how it fails are described in "
        "[Serving](../operations/serving.md) and [Security and access]"
        "(../operations/security.md).",
        "",
        "## Operations",
        "",
        "| method | path | summary | replies |",
        "|---|---|---|---|",
    ]
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            summary = (operation.get("summary") or "").replace("|", "\\|")
            replies = ", ".join(sorted(operation.get("responses", {})))
            lines.append(f"| `{method.upper()}` | `{path}` | {summary} | {replies} |")
    lines += [
        "",
        "## Browse the document",
        "",
        "Swagger UI, served from the docs site itself (no CDN):",
        "",
        '<swagger-ui src="openapi.json"/>',
        "",
    ]
    return "\n".join(lines)


def signals_markdown() -> str:
    """The signal catalogue and the priority policy as one Markdown page."""
    from features.catalogue import CATALOGUE_VERSION, catalogue_markdown
    from features.policy import POLICY_VERSION, policy_markdown

    return "\n".join(
        [
            "# Signals and the priority policy",
            "",
            "Generated from `features.catalogue` and `features.policy` at every build; "
            "`triage features list --markdown` prints the first table. What the signals "
            "mean, the time rule and why the policy exists: "
            "[The feature layer](../concepts/features.md).",
            "",
            f"## The signal catalogue (version {CATALOGUE_VERSION})",
            "",
            catalogue_markdown(),
            "",
            f"## The priority policy (`{POLICY_VERSION}`)",
            "",
            "**never lowers**: monotone in the catalogue's direction in every model family, "
            'and measured from "none", so its contribution is zero or more. '
            "**not an input**: no model reads it.",
            "",
            policy_markdown(),
            "",
        ]
    )


def python_modules(package: str) -> list[str]:
    """The importable modules of ``package`` (a top-level folder), sorted, less the skipped."""
    modules = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if SKIPPED_MODULE_PARTS.intersection(parts) or parts[-1].startswith("_"):
            continue
        modules.append(".".join(parts))
    return modules


def python_reference_markdown(package: str) -> str:
    """One page of mkdocstrings directives, one per module of ``package``."""
    lines = [
        f"# `{package}`",
        "",
        PACKAGES[package],
        "",
        "Generated from the docstrings at every build (mkdocstrings); public names only.",
        "",
    ]
    for module in python_modules(package):
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def generated_pages() -> dict[str, str]:
    """Every generated page, by its path inside the docs site (``GENERATED_PATHS``)."""
    spec = openapi_document()
    pages = {
        "reference/cli.md": cli_markdown(),
        "reference/http-api.md": openapi_markdown(spec),
        "reference/openapi.json": json.dumps(spec, indent=2) + "\n",
        "reference/signals.md": signals_markdown(),
    }
    for package in PACKAGES:
        pages[f"reference/python/{package}.md"] = python_reference_markdown(package)
    assert tuple(pages) == GENERATED_PATHS
    return pages
