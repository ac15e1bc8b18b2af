"""``triage governance atrs|dpia|eqia`` on a registered champion of a small synthetic world:
every required field present, generated from the project or marked for the council, never an
invented answer for what only a council can say."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.app import app
from features.catalogue import CATALOGUE
from models.fairness import AuditConfig
from models.train import TrainConfig, train
from service.governance import ATRS_REQUIRED, TO_COMPLETE, missing_fields
from service.governance.drafts import DPIA_REQUIRED, EQIA_REQUIRED
from triage.settings import get_settings

FAST = TrainConfig(scorecard_bootstraps=3, challenger_bootstraps=2, evaluation_bootstraps=20)


@pytest.fixture(scope="module")
def champion(small_world_extract: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tracking store whose champion has a card, gates and a fairness audit; its URI."""
    from explain.fairness_gaps import log_fairness_audit
    from models.tracking import log_and_register

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    result = train(small_world_extract, FAST)
    registration = log_and_register(
        result, tracking_uri=uri, model_name="referral-triage", alias="champion"
    )
    assert registration.promoted
    log_fairness_audit(
        registration.run_id,
        result,
        tracking_uri=uri,
        directory=small_world_extract,
        config=AuditConfig(n_boot=20),
    )
    return uri


@pytest.fixture
def cli(champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A runner whose settings name the champion's tracking store."""
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRIAGE_MLFLOW_TRACKING_URI", champion)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _field(document: dict[str, Any], path: str) -> dict[str, Any]:
    node: Any = document
    for part in path.split("."):
        node = node[part]
    assert isinstance(node, dict)
    return node


def _run(cli: CliRunner, command: str, out: Path) -> dict[str, Any]:
    result = cli.invoke(app, ["governance", command, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "for the council to complete" in result.output
    document: dict[str, Any] = json.loads((out / f"{command}.json").read_text())
    return document


def test_the_transparency_record_carries_every_field_and_invents_none(
    cli: CliRunner, tmp_path: Path
) -> None:
    record = _run(cli, "atrs", tmp_path / "out")
    assert missing_fields(record, ATRS_REQUIRED) == []
    # What only a council can say is marked, with what to write.
    for path in (
        "tier_1.contact_email",
        "tier_1.organisation",
        "tier_2.owner_and_responsibility.senior_responsible_owner",
        "tier_2.decision_making_process.frequency_and_scale",
        "tier_2.tool_specification.data.data_sharing_agreements",
    ):
        assert _field(record, path)[TO_COMPLETE], path
    model = record["tier_2"]["tool_specification"]["model"]
    assert model["version"]["value"] == "referral-triage/1"
    assert [s["signal"] for s in model["inputs"]["value"]] == [s.name for s in CATALOGUE]
    gates = record["tier_2"]["tool_specification"]["maintenance"]["value"]["promotion_gates"]
    assert gates and all(set(g) == {"gate", "passed", "value", "limit", "detail"} for g in gates)
    risks = record["tier_2"]["risks_and_impact"]["risks_and_mitigations"]["value"]
    assert risks["fairness_audit"], "the champion's audit findings are carried"
    # The published audit's words (small counts withheld), never the internal document's.
    from models.fairness import pseudonymise_document
    from service.champion import champion_documents

    internal = champion_documents(get_settings())[2]
    assert internal is not None and "structure" in internal
    published = pseudonymise_document(internal)["summary"]["sentences"]
    assert risks["fairness_audit"] == published
    assert any("never lowers" in line for line in risks["priority_policy"])
    markdown = (tmp_path / "out" / "atrs.md").read_text()
    assert markdown.startswith("# Algorithmic transparency record")
    assert "## Tier 1" in markdown and "### Owner and responsibility" in markdown
    assert markdown.count("**For the council to complete:**") == json.dumps(record).count(
        f'"{TO_COMPLETE}"'
    )


def test_the_dpia_draft_names_special_category_data_and_the_automated_decision_safeguards(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_RETENTION_REFERRAL_DAYS", "3001")
    monkeypatch.setenv("TRIAGE_RETENTION_AUDIT_DAYS", "3650")
    draft = _run(cli, "dpia", tmp_path)
    assert missing_fields(draft, DPIA_REQUIRED) == []
    categories = {
        row["table"]: row["categories"] for row in draft["processing"]["data_categories"]["value"]
    }
    assert "special category: racial or ethnic origin" in categories["children"]
    assert "identifying details" in categories["identity_records"]
    for safeguard in ("information", "representations", "human_intervention", "contest"):
        assert draft["automated_decisions"][safeguard]["value"]
    for council in ("lawful_basis", "special_category_condition"):
        assert TO_COMPLETE in draft["necessity_and_proportionality"][council]
    retention = draft["processing"]["retention"]
    assert TO_COMPLETE in retention["decision"]
    configured = {row["kind"]: row["kept"] for row in retention["configured"]["value"]}
    assert configured["referrals"] == "3001 days"  # the configured period, not a default
    assert configured["audit_log"] == "3650 days"


def test_the_eqia_draft_uses_the_audit_where_recorded_and_asks_where_not(
    cli: CliRunner, tmp_path: Path
) -> None:
    draft = _run(cli, "eqia", tmp_path)
    assert missing_fields(draft, EQIA_REQUIRED) == []
    race = draft["characteristics"]["race"]["value"]
    assert race["audited_as"] == "ethnicity" and race["an_input_to_the_model"] is False
    assert race["evidence"]
    assert TO_COMPLETE in draft["characteristics"]["religion or belief"]
    assert draft["evidence"]["fairness_audit"]["value"]["verdicts"]


def test_an_audit_file_replaces_the_champion_s_and_a_bad_one_is_refused(
    cli: CliRunner, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.json"
    published = {"disclosure": {}, "summary": {"sentences": ["A sentence."], "verdicts": {}}}
    audit.write_text(json.dumps(published))
    result = cli.invoke(app, ["governance", "atrs", "--out", str(tmp_path), "--audit", str(audit)])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "atrs.json").read_text())
    risks = record["tier_2"]["risks_and_impact"]["risks_and_mitigations"]["value"]
    assert risks["fairness_audit"] == ["A sentence."]
    audit.write_text("{not json")
    refused = cli.invoke(app, ["governance", "atrs", "--out", str(tmp_path), "--audit", str(audit)])
    assert refused.exit_code == 2 and "Cannot read the audit" in refused.output
    # An audit from before disclosure control is never published as it is.
    audit.write_text(json.dumps({"summary": {"sentences": ["Raw."], "verdicts": {}}}))
    old = cli.invoke(app, ["governance", "atrs", "--out", str(tmp_path), "--audit", str(audit)])
    assert old.exit_code == 2 and "Not a publishable audit" in old.output


def test_without_a_champion_the_command_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("TRIAGE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/empty.db")
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["governance", "atrs", "--out", str(tmp_path / "out")])
    get_settings.cache_clear()
    assert result.exit_code == 2
    assert "triage train" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_fields_finds_absent_empty_and_unsourced_fields() -> None:
    document = {
        "a": {"value": "x", "source": "card"},
        "b": {"value": "", "source": "card"},
        "c": {"value": "x"},
        "d": {TO_COMPLETE: " "},
        "e": {TO_COMPLETE: "the council's contact"},
    }
    assert missing_fields(document, ["a", "b", "c", "d", "e", "f", "a.value"]) == [
        "b",
        "c",
        "d",
        "f",
        "a.value",
    ]
