"""Response shapes of the profiles API (request shapes are the domain models)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.profiles.domain.model import EnrolmentFields, ImportStatus, ProfileFields, ProgramFields, Strict
from shared.events.models import KeyList
from shared.events.values import EnrollmentRole, EnrollmentStatus, NeedRating, ShortText, Tag
from shared.paging import OffsetPage

ItemT = TypeVar("ItemT")


class Page(OffsetPage[ItemT], Generic[ItemT]):
    """One page of a list; pass `next_offset` as `offset` for the next one (null: this was the last).

    These lists were cursor-paged before every list took `offset`: `next_cursor` is still given for clients that
    pass it back as `cursor`."""

    next_cursor: UUID | None = Field(
        default=None,
        deprecated=True,
        description="Deprecated: page with `offset` and `next_offset`. The `cursor` of the next page; null on the last.",
    )


class OrganisationIn(Strict):
    name: ShortText


class OrganisationPatch(Strict):
    name: ShortText | None = None


class OrganisationOut(BaseModel):
    id: UUID
    name: str
    version: int


class CampusIn(Strict):
    name: ShortText


class CampusOut(BaseModel):
    id: UUID
    tenant_id: UUID
    name: str
    version: int


class ProgramOut(ProgramFields):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    tenant_id: UUID
    version: int


class ParticipantOut(ProfileFields):
    model_config = ConfigDict(extra="ignore")

    id: UUID
    tenant_id: UUID
    version: int
    # Described as read: a stored value may predate the rule that writes apply.
    tenure_start: date = Field(
        description="When the person started (or will start) in the organisation or program of study. A value "
        "stored before the rule writes apply (1900-01-01 to a year after today) may lie outside it."
    )
    needs: Annotated[tuple[NeedRating, ...], Field(max_length=100)] = ()
    offers: KeyList = ()


class NeedsOut(BaseModel):
    person_id: UUID
    version: int
    needs: tuple[NeedRating, ...]


class OffersOut(BaseModel):
    person_id: UUID
    version: int
    offers: tuple[str, ...]


class EnrolmentIn(EnrolmentFields):
    person_id: UUID


class NewPersonEnrolment(EnrolmentFields):
    """The program a new person is enrolled in as they are created."""

    program_id: UUID


class ParticipantIn(ProfileFields):
    """A new participant, and the program they join (a coordinator's must name one of their programs)."""

    enrolment: NewPersonEnrolment | None = Field(
        default=None,
        description="Enrols the person in this program in the same transaction. Required of a coordinator (one of "
        "their programs: whom they create they reach only through an enrolment); optional for an operator.",
    )


class EnrolmentOut(BaseModel):
    id: UUID
    tenant_id: UUID
    program_id: UUID
    person_id: UUID
    role: EnrollmentRole
    capacity: int
    status: EnrollmentStatus
    cohort: Tag | None = None
    version: int


class RowErrorOut(BaseModel):
    row_number: int = Field(description="CSV record number; the header is row 1.")
    column: str | None
    message: str


class ImportJobOut(BaseModel):
    id: UUID
    program_id: UUID
    status: ImportStatus
    rows_processed: int
    rows_imported: int = Field(description="Rows that created or changed a participant.")
    rows_unchanged: int
    rows_failed: int
    rows_profile_kept: int = Field(
        description="A coordinator's rows that enrolled a person of another of the organisation's programs and left "
        "their stored profile as it is (that program's coordinator maintains it)."
    )
    errors_truncated: bool = Field(description="More errors happened than are stored (10,000 per import).")
    failure: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    version: int


class ImportReportOut(ImportJobOut):
    errors: list[RowErrorOut] = Field(description="The first 1,000 row errors; page through all with /errors.")
    profile_kept_rows: list[int] = Field(
        default_factory=list,
        description="Row numbers (the first 1,000) of the rows counted in rows_profile_kept: the person was enrolled, "
        "their stored profile kept.",
    )
