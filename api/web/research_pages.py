"""The researchers' landing page: what the research API offers and how to get a token.

Researchers see no case data, so the queue refuses them; signing in (or opening ``/``) takes
them here instead of to a 403 they cannot leave.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.web.auth import Viewer, require_page_roles
from api.web.render import page
from models.fairness import DEFAULT_MIN_COUNT
from service.research import GROUPINGS

router = APIRouter(include_in_schema=False)

CASEWORK_ROLES = frozenset({"practitioner", "manager", "admin"})
RESEARCH_PATH = "/research"
QUEUE_PATH = "/queue"

ResearchViewer = Annotated[Viewer, Depends(require_page_roles("researcher", "admin"))]


def home_for(roles: Collection[str]) -> str:
    """The page a user starts on: the queue for casework roles, else the research page."""
    if CASEWORK_ROLES & set(roles) or "researcher" not in roles:
        return QUEUE_PATH
    return RESEARCH_PATH


@router.get(RESEARCH_PATH)
def research(request: Request, state: StateDep, viewer: ResearchViewer) -> Response:
    """What researchers can read (pseudonymised, audited) and how to get a bearer token."""
    base = str(request.base_url).rstrip("/")
    return page(
        request,
        "research.html",
        session=viewer.session,
        base_url=base,
        groupings=sorted(GROUPINGS),
        min_count=DEFAULT_MIN_COUNT,
    )
