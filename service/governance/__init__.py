"""Governance documents a council signs off: the transparency record and impact assessment drafts.

Every field is generated from what the project holds (the champion's model card, gates and
fairness audit, the signal catalogue, "what the model does not know", the store's tables),
or marked for the council to complete (``ToComplete``): nothing a council must decide is
invented here.
"""

from service.governance.atrs import ATRS_REQUIRED, atrs_record
from service.governance.drafts import dpia_draft, eqia_draft
from service.governance.fields import TO_COMPLETE, missing_fields, to_complete
from service.governance.markdown import document_markdown
from service.governance.sources import Sources, champion_sources

__all__ = [
    "ATRS_REQUIRED",
    "TO_COMPLETE",
    "Sources",
    "atrs_record",
    "champion_sources",
    "document_markdown",
    "dpia_draft",
    "eqia_draft",
    "missing_fields",
    "to_complete",
]
