"""Request and response shapes of the opportunities API (HighLevel's field names)."""

from typing import Annotated, Literal

from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

Status = Literal["open", "won", "lost", "abandoned"]
# Ids travel as strings (HighLevel's are strings); ours are positive integers inside.
Id = str
# In bodies, an id may also come as a JSON number.
ID_PATTERN = r"^[1-9][0-9]{0,18}$"
IdIn = Annotated[str, Field(pattern=ID_PATTERN)] | StrictInt
Money = float
# A custom field's value as HighLevel sends it: text, number, yes/no or a list of options.
FieldValue = (
    StrictBool
    | StrictInt
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(max_length=10_000)]
    | Annotated[list[Annotated[str, Field(max_length=255)]], Field(max_length=100)]
    | None
)


class Out(BaseModel):
    """Answers are built as dicts: plain pydantic validates them several times faster than
    ninja's Schema, whose validator is made for reading ORM objects."""


class ErrorOut(Out):
    statusCode: int
    message: str


class ContactOut(Out):
    id: Id
    name: str
    companyName: str
    email: str
    phone: str


class OpportunityOut(Out):
    id: Id
    name: str
    monetaryValue: Money
    pipelineId: Id
    pipelineStageId: Id
    assignedTo: Id | None
    status: Status
    source: str
    lostReasonId: Id | None
    contactId: Id | None
    contact: ContactOut | None
    lastStatusChangeAt: str | None
    lastStageChangeAt: str | None
    createdAt: str
    updatedAt: str
    expectedCloseDate: str | None = Field(None, description="yyyy-mm-dd")
    probability: int | None = Field(None, description="0–100; null: the stage's")
    tags: list[str] = Field(default_factory=list, description="Tag names")
    followers: list[Id] = Field(default_factory=list, description="User ids")
    customFields: list["CustomFieldOut"] = Field(default_factory=list)
    version: int = Field(description="Ours: send it back with PUT to refuse stale writes (409).")


class CustomFieldOut(Out):
    id: Id
    key: str
    fieldValue: bool | int | float | str | list[str] | None


OpportunityOut.model_rebuild()


class OpportunityEnvelope(Out):
    opportunity: OpportunityOut


class NoteOut(Out):
    id: Id
    body: str
    authorId: Id | None
    createdAt: str


class TaskOut(Out):
    id: Id
    title: str
    dueOn: str | None
    assignedTo: Id | None
    doneAt: str | None


class HistoryOut(Out):
    field: str
    fromStageId: Id | None
    toStageId: Id | None
    fromStatus: str
    toStatus: str
    oldValue: str
    newValue: str
    userId: Id | None
    at: str


class OpportunityDetailOut(Out):
    opportunity: OpportunityOut
    # Ours, beside HighLevel's envelope: the record's notes, tasks and history (latest 100).
    notes: list[NoteOut]
    tasks: list[TaskOut]
    history: list[HistoryOut]


class UpsertOut(Out):
    opportunity: OpportunityOut
    new: bool


class SearchMeta(Out):
    total: int
    startAfterId: Id | None
    startAfter: int | None = Field(description="createdAt of the last item, in ms since epoch")
    nextPageUrl: str | None
    currentPage: int | None = None
    nextPage: int | None = None
    prevPage: int | None = None


class SearchOut(Out):
    opportunities: list[OpportunityOut]
    meta: SearchMeta


class ContactIn(Schema):
    """Ours: create a contact with the deal instead of passing contactId."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field("", max_length=254)
    phone: str = Field("", max_length=40)
    companyName: str = Field("", max_length=200)


class CustomFieldIn(Schema):
    """HighLevel's `{"id" or "key", "field_value"}` (`fieldValue` also read); null clears."""

    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, Field(max_length=100)] | StrictInt | None = None
    key: str | None = Field(None, max_length=120)
    field_value: FieldValue = None
    fieldValue: FieldValue = None


class RelatedIn(Schema):
    """Beside the deal's own fields (HighLevel's names): set in the same transaction."""

    model_config = ConfigDict(extra="ignore")
    tags: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None, max_length=100, description="Tag names; the deal's tags become exactly these"
    )
    followers: list[IdIn] | None = Field(
        None, max_length=100, description="User ids; the deal's followers become exactly these"
    )
    customFields: list[CustomFieldIn] | None = Field(None, max_length=200)
    expectedCloseDate: str | None = Field(None, max_length=20, description="yyyy-mm-dd")
    probability: int | None = Field(None, description="0–100; null: the stage's probability")


class OpportunityIn(RelatedIn):
    model_config = ConfigDict(extra="ignore")
    pipelineId: IdIn
    name: str = Field(min_length=1, max_length=200)
    pipelineStageId: IdIn | None = None
    status: Status = "open"
    contactId: IdIn | None = None
    monetaryValue: Money = Field(0, ge=0, le=999_999_999_999)
    assignedTo: IdIn | None = None
    source: str = Field("", max_length=100)
    lostReasonId: IdIn | None = None
    contact: ContactIn | None = None


class OpportunityUpdateIn(RelatedIn):
    model_config = ConfigDict(extra="ignore")
    name: str | None = Field(None, min_length=1, max_length=200)
    pipelineId: IdIn | None = None
    pipelineStageId: IdIn | None = None
    status: Status | None = None
    monetaryValue: Money | None = Field(None, ge=0, le=999_999_999_999)
    assignedTo: IdIn | None = None
    source: str | None = Field(None, max_length=100)
    lostReasonId: IdIn | None = None
    contactId: IdIn | None = None
    version: int | None = Field(None, ge=1, le=2**31 - 1)


class StatusIn(Schema):
    model_config = ConfigDict(extra="ignore")
    status: Status
    lostReasonId: IdIn | None = None
    version: int | None = Field(None, ge=1, le=2**31 - 1)


class FollowersIn(Schema):
    model_config = ConfigDict(extra="ignore")
    followers: list[IdIn] = Field(max_length=100, description="User ids")
    version: int | None = Field(None, ge=1, le=2**31 - 1)


class FollowersOut(Out):
    id: Id
    followers: list[Id]
    followersAdded: list[Id] | None = None
    followersRemoved: list[Id] | None = None
    version: int


class DeletedOut(Out):
    # HighLevel's spelling.
    succeded: bool


class StageOut(Out):
    id: Id
    name: str
    position: int


class PipelineOut(Out):
    id: Id
    name: str
    stages: list[StageOut]


class PipelinesOut(Out):
    pipelines: list[PipelineOut]


class LostReasonOut(Out):
    id: Id
    name: str


class LostReasonsOut(Out):
    lostReasons: list[LostReasonOut]


class EventOut(Out):
    id: Id
    type: str
    opportunityId: Id
    pipelineId: Id | None
    actorId: Id | None
    createdAt: str
    opportunity: dict | None
    changes: dict


class EventsOut(Out):
    events: list[EventOut]
    meta: dict


ERRORS = {code: ErrorOut for code in (400, 401, 403, 404, 422, 429)}
WRITE_ERRORS = {**ERRORS, 409: ErrorOut}
