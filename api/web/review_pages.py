"""The practice-review chronology page (managers and admins): the form, the chronology, and the
JSON and HTML downloads, each recorded in the audit log with the review it is for."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from api.deps import StateDep
from api.web.auth import ManagerViewer, check_form_token
from api.web.case_pages import show
from service import review_export
from service.errors import Refusal
from service.review_html import chronology_html, review_file_html

router = APIRouter(include_in_schema=False)

PATH = "/practice-review"
FORMATS = {"json": "application/json", "html": "text/html; charset=utf-8"}


def _prepare(
    state: StateDep, viewer: ManagerViewer, *, kind: str, id: str, reason: str
) -> dict[str, Any]:
    """Check the form and build the document; ``Refusal`` names the field at fault."""
    errors: list[dict[str, str]] = []
    subject = None
    try:
        subject = review_export.subject_of(
            child=id if kind != "household" else None,
            household=id if kind == "household" else None,
        )
    except Refusal as exc:
        errors.extend(exc.errors or [])
    try:
        reason = review_export.check_reason(reason)
    except Refusal as exc:
        errors.extend(exc.errors or [])
    if errors or subject is None:
        raise review_export.Invalid("validation_error", "the form needs correcting", errors)
    with state.read_sessions() as db:
        return review_export.build(
            db, subject=subject, reason=reason, generated_by=viewer.actor.name
        )


def _record(
    state: StateDep, document: dict[str, Any], actor: str, channel: str, files: list[str]
) -> None:
    with state.sessions() as db:
        review_export.record_export(
            db, document=document, actor=actor, channel=channel, files=files
        )
        db.commit()


def _form(
    request: Request,
    state: StateDep,
    viewer: ManagerViewer,
    form: dict[str, str],
    *,
    errors: list[dict[str, str]] | None = None,
    status_code: int = 200,
    **more: Any,
) -> Response:
    context = {"form": form, "errors": errors or [], "document": None}
    context |= {"reason_max": review_export.REASON_MAX} | more
    return show(request, state, viewer, "review/page.html", status_code=status_code, **context)


def _refused(
    request: Request, state: StateDep, viewer: ManagerViewer, form: dict[str, str], exc: Refusal
) -> Response:
    status = 404 if isinstance(exc, review_export.NotFound) else 422
    errors = exc.errors or [{"field": "child", "reason": exc.message}]
    # A page reads sentences: the service's reasons start in lower case for the command line.
    errors = [e | {"reason": e["reason"][:1].upper() + e["reason"][1:]} for e in errors]
    return _form(request, state, viewer, form, errors=errors, status_code=status)


@router.get(PATH)
def practice_review_form(request: Request, state: StateDep, viewer: ManagerViewer) -> Response:
    """The empty form: nothing is exported or audited on a GET (the id never sits in a URL)."""
    return _form(request, state, viewer, {"kind": "child", "id": "", "reason": ""})


@router.post(PATH)
def practice_review(
    request: Request,
    state: StateDep,
    viewer: ManagerViewer,
    kind: Annotated[str, Form(max_length=20)] = "child",
    id: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The chronology for the child or household and review named (audited), with downloads."""
    check_form_token(viewer, csrf_token)
    form = {"kind": kind, "id": id, "reason": reason}
    try:
        document = _prepare(state, viewer, kind=kind, id=id, reason=reason)
    except Refusal as exc:
        return _refused(request, state, viewer, form, exc)
    _record(state, document, viewer.actor.name, "page", [])
    subject = document["subject"]
    # The download forms carry exactly what was shown: the checked id and the trimmed reason.
    shown = {"kind": subject["kind"], "id": subject["id"], "reason": document["reason"]}
    return _form(
        request,
        state,
        viewer,
        form,
        document=document,
        chronology=chronology_html(document),
        shown=shown,
    )


@router.post(f"{PATH}/download")
def practice_review_download(
    request: Request,
    state: StateDep,
    viewer: ManagerViewer,
    kind: Annotated[str, Form(max_length=20)] = "child",
    id: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=1000)] = "",
    format: Annotated[str, Form(max_length=10)] = "json",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The chronology as a JSON or HTML file (audited); a form error goes back to the form."""
    check_form_token(viewer, csrf_token)
    form = {"kind": kind, "id": id, "reason": reason}
    if format not in FORMATS:
        errors = [{"field": "format", "reason": "Choose json or html"}]
        return _form(request, state, viewer, form, errors=errors, status_code=422)
    try:
        document = _prepare(state, viewer, kind=kind, id=id, reason=reason)
    except Refusal as exc:
        return _refused(request, state, viewer, form, exc)
    name = review_export.file_name(document, format)
    body = review_export.to_json(document) if format == "json" else review_file_html(document)
    _record(state, document, viewer.actor.name, "page_download", [name])
    return Response(
        body,
        media_type=FORMATS[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
