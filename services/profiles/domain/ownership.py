"""Who sets which profile field: the organisation, or the person the profile is about.

The organisation's fields come from its HR or student-information system (the CSV import) or from a coordinator,
and most feed the matching engine's hard rules (same reporting line, supervisor and report, same team, campus rules,
the mentor-ahead seniority rule). A participant who could change them could step around an exclusion the
organisation set, e.g. remove their manager to be matched with them. The person owns what describes them as a
mentor or mentee: interests, goals, availability, languages, working style, consent, their blocked list.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.profiles.domain.model import ProfileFields

#: The fields only a coordinator, an operator or the import may change, each with why it is the organisation's.
ORGANISATION_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "external_id": "the person's record in the HR or student-information system; the import's match key",
        "email": "the organisation's address for the person; the import's match key without an external id",
        "campus_id": "programs' and matching's campus rules",
        "department": "the organisation's structure (department or lab), as its HR system has it",
        "team": "matching's same-team exclusion",
        "manager_person_id": "matching's supervisor-and-report exclusion",
        "reporting_line_id": "matching's same-reporting-line exclusion",
        "role_level": "matching's rule that a mentor is ahead of the mentee (year of study or job grade)",
        "tenure_start": "matching's rule that a mentor is ahead of the mentee (tenure)",
    }
)

#: The fields the participant edits on their own profile (as do coordinators and the import).
PERSON_FIELDS: frozenset[str] = frozenset(ProfileFields.model_fields) - ORGANISATION_FIELDS.keys()


def organisation_fields_changed(current: ProfileFields, proposed: ProfileFields) -> tuple[str, ...]:
    """The organisation's fields whose value `proposed` changes, in declaration order.

    Both sides are validated profiles, so a value sent back as read (clients often PUT or PATCH the whole object)
    or in another spelling of the same value (an email domain in capitals) is no change.
    """
    return tuple(name for name in ORGANISATION_FIELDS if getattr(current, name) != getattr(proposed, name))


def refusal_message(fields: tuple[str, ...]) -> str:
    """Why a participant's write of `fields` is refused, naming them and who sets them."""
    them = "it" if len(fields) == 1 else "them"
    return (
        f"a participant may not change {', '.join(fields)} of their profile: a coordinator or the organisation's "
        f"HR or student-information import sets {them}"
    )
