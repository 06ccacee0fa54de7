"""Importing opportunities from a CSV file: validate every row, preview, then write.

`import_plan` reads the whole file and decides, row by row, what would happen: create,
update, leave unchanged, or refuse with a reason. It writes nothing. `import_apply` makes
the same plan again (so it never trusts an older preview), then writes the good rows in
chunks of 1,000, each planned again under lock and written in its own transaction with a
handful of bulk statements: others' writes wait for one chunk at most, never for the file.
The run functions (`import_prepare`, `import_confirm`, `import_continue`) do the same for
the web pages, keeping the file and the progress in an ImportRun.

Matching: a row with an `id` updates that opportunity (only if the importing user can see
it); otherwise a row whose contact email and name match a visible opportunity updates it;
otherwise the row creates an opportunity. Defaults for new rows follow HighLevel: the first
open pipeline, its first stage, value 0, status Open; a lost reason alone means Lost.
In updates an empty cell keeps the current value (unless the options say otherwise).

HighLevel's export headers ("Opportunity Name", "Lead Value", "Pipeline ID", "Followers",
…) are recognised, and any column may be mapped to a field by hand (`ImportOptions`):
custom fields (by name or key), tags ("a, b" or "a; b") and followers (full name, username
or e-mail) are written in the chunk's transaction with bulk statements and recorded by
`changes_record` like the row's own fields.
"""

import contextlib
import copy
import csv
import dataclasses
import io
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Max, Q, Value
from django.db.models.functions import Concat, Lower
from django.utils import timezone

from imports_log.models import ImportRun
from opportunities import ranking
from opportunities.custom_fields import columns_for, parse_date, parse_value, value_of
from opportunities.exports import FORMULA_STARTS
from opportunities.models import (
    CLOSED_STATUSES,
    Contact,
    CustomField,
    CustomFieldValue,
    LostReason,
    Opportunity,
    Status,
)
from opportunities.selectors import can_view_all, opportunities_visible_to
from opportunities.services.access import ensure_permission
from opportunities.services.changes import CUSTOM_PREFIX, changes_record, snapshot
from opportunities.services.related import MAX_FOLLOWERS, clean_tag_names, tags_resolve
from pipelines.models import Pipeline, Stage

MAX_ROWS = 50_000
DIGIT_ZERO = ranking.DIGITS[0]
# Rows per IN (...) lookup: well under SQLite's and PostgreSQL's bound-parameter limits.
LOOKUP_CHUNK = 2000
# Rows per transaction when writing: others' writes wait for one chunk at most.
BATCH_SIZE = 1000
# Seconds between two chunks on SQLite, for the writers waiting for its one lock.
CHUNK_PAUSE = 0.05

# Accepted header spellings -> field. The export's own headers are among them, so an
# exported file can be edited and imported back.
HEADERS = {
    "id": "id",
    "opportunity_id": "id",
    "name": "name",
    "opportunity": "name",
    "opportunity_name": "name",
    "title": "name",
    "contact": "contact_name",
    "contact_name": "contact_name",
    "contact_email": "contact_email",
    "email": "contact_email",
    "contact_phone": "contact_phone",
    "phone": "contact_phone",
    "company": "company",
    "contact_company": "company",
    "pipeline": "pipeline",
    "stage": "stage",
    "status": "status",
    "value": "value",
    "amount": "value",
    "owner": "owner",
    "assigned_to": "owner",
    "source": "source",
    "lost_reason": "lost_reason",
    # HighLevel's spellings (its export and the files its users prepare).
    "pipeline_name": "pipeline",
    "pipeline_id": "pipeline",
    "pipeline_name_or_id": "pipeline",
    "stage_name": "stage",
    "stage_id": "stage",
    "stage_name_or_id": "stage",
    "pipeline_stage": "stage",
    "pipeline_stage_id": "stage",
    "opportunity_value": "value",
    "lead_value": "value",
    "monetary_value": "value",
    "opportunity_owner": "owner",
    "owner_name": "owner",
    "assigned_user": "owner",
    "followers": "followers",
    "follower": "followers",
    "company_name": "company",
    "business_name": "company",
    "tags": "tags",
    "tag": "tags",
    "expected_close_date": "expected_close_date",
    "close_date": "expected_close_date",
    "expected_close": "expected_close_date",
    "opportunity_status": "status",
    "opportunity_source": "source",
    "lost_reason_name": "lost_reason",
}
# What a column can be mapped to in the mapping step, in the order the <select> lists them.
FIELD_LABELS = {
    "id": "Opportunity ID",
    "name": "Opportunity name",
    "pipeline": "Pipeline (name or ID)",
    "stage": "Stage (name or ID)",
    "value": "Value",
    "status": "Status",
    "lost_reason": "Lost reason",
    "owner": "Owner",
    "followers": "Followers",
    "source": "Source",
    "expected_close_date": "Expected close date",
    "tags": "Tags",
    "contact_name": "Contact name",
    "contact_email": "Contact email",
    "contact_phone": "Contact phone",
    "company": "Company",
}
MODES = {"both": "Create and update", "create": "Create", "update": "Update"}
# Written by the export, meaningless to import: skipped without a warning.
EXPORT_ONLY = {"created", "closed", "days_open"}
# The fields a file sets directly, checked with the model fields' own validators (lengths,
# digits). Relations are checked against the bulk-fetched lookups instead: clean_fields()
# would query once per row for each, and validate every other field for nothing.
OPPORTUNITY_CELLS = [Opportunity._meta.get_field(name) for name in ("name", "source", "value")]
CONTACT_CELLS = [Contact._meta.get_field(name) for name in ("name", "email", "phone", "company")]
_STATUS_BY_TEXT = {
    text.lower(): value for value, label in Status.choices for text in (value, label)
}


@dataclass
class ImportOptions:
    """The mapping step's choices: {column index: field ("" = don't import)} (None: as
    suggested from the headers), which rows to write, and whether an empty cell clears."""

    mapping: dict[str, str] | None = None
    mode: str = "both"
    keep_when_empty: bool = True

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data) -> "ImportOptions":
        data = data if isinstance(data, dict) else {}
        mapping = data.get("mapping")
        return cls(
            mapping={str(k): str(v) for k, v in mapping.items()}
            if isinstance(mapping, dict)
            else None,
            mode=data.get("mode") if data.get("mode") in MODES else "both",
            keep_when_empty=bool(data.get("keep_when_empty", True)),
        )


DEFAULT_OPTIONS = ImportOptions()


def field_choices(custom_fields) -> list[tuple[str, str]]:
    """(target, label) of everything a column can be mapped to."""
    choices = list(FIELD_LABELS.items())
    choices += [(CUSTOM_PREFIX + f.key, f"Custom field: {f.name}") for f in custom_fields]
    return choices


def suggest_target(header: str, custom_fields) -> str:
    """The field a header names ("" when none): our and HighLevel's names, custom fields by
    name or key."""
    key = _header_key(header)
    if key in HEADERS:
        return HEADERS[key]
    for custom in custom_fields:
        if key in (_header_key(custom.name), _header_key(custom.key)):
            return CUSTOM_PREFIX + custom.key
    return ""


def read_headers(text: str) -> list[str]:
    """The header row's cells, as written."""
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        return [header.strip().lstrip("\ufeff") for header in next(reader, [])]
    except csv.Error as exc:
        raise ImportFileError(f"This is not a readable CSV file ({exc}).") from exc


def column_targets(headers, custom_fields, options: ImportOptions) -> list[str]:
    """The field each column goes to ("" = not imported); a field takes one column."""
    allowed = {target for target, _ in field_choices(custom_fields)}
    targets, taken = [], set()
    for index, header in enumerate(headers):
        if options.mapping is not None:
            target = options.mapping.get(str(index), "")
        else:
            target = suggest_target(header, custom_fields)
        if target not in allowed or target in taken:
            target = ""
        taken.add(target)
        targets.append(target)
    return targets


class ImportFileError(Exception):
    """The file as a whole cannot be read; no row was looked at."""


class ImportMappingError(ImportFileError):
    """No column is mapped to the name (nor the id): the mapping step can still fix it."""


class ImportChanged(Exception):
    """The rows would now be imported differently from the preview; nothing was written."""


@dataclass
class RowError:
    line: int
    name: str
    reasons: list[str]

    @property
    def message(self) -> str:
        return "; ".join(self.reasons)


@dataclass
class PlannedRow:
    line: int
    opportunity: Opportunity
    is_new: bool
    changed: bool = True
    # A contact this import creates (rows with the same new email share the object).
    new_contact: Contact | None = None
    old_stage_id: int | None = None
    old_status: str = ""
    # The tracked values before the import (None for a new opportunity).
    before: dict | None = None
    # Tags (names), followers (users) and custom values ({CustomField: (value, stored row
    # or None)}) to set; None: left as they are.
    tags: list[str] | None = None
    followers: list | None = None
    custom: dict = field(default_factory=dict)
    # {attr: (old, new)} for changes_record: tags, followers, "custom:<key>".
    extra: dict = field(default_factory=dict)

    @property
    def stage_changed(self) -> bool:
        return self.opportunity.stage_id != self.old_stage_id

    @property
    def status_changed(self) -> bool:
        return self.opportunity.status != self.old_status


@dataclass
class ImportPlan:
    rows: list[PlannedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    # [(header, target)] and the active custom fields, for the mapping step.
    columns: list[tuple[str, str]] = field(default_factory=list)
    custom_fields: list = field(default_factory=list)
    # Why nothing can be planned with this mapping (the mapping step shows it).
    problem: str = ""

    @property
    def creates(self) -> int:
        return sum(1 for row in self.rows if row.is_new)

    @property
    def updates(self) -> int:
        return sum(1 for row in self.rows if not row.is_new and row.changed)

    @property
    def unchanged(self) -> int:
        return sum(1 for row in self.rows if not row.is_new and not row.changed)

    @property
    def total(self) -> int:
        return len(self.rows) + len(self.errors)

    @property
    def fingerprint(self) -> str:
        """What the preview promised; a confirm whose plan differs is shown again."""
        bad = ",".join(str(error.line) for error in self.errors)
        return f"{self.creates}:{self.updates}:{self.unchanged}:{bad}"


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    skipped: int

    def __add__(self, other: "ImportResult") -> "ImportResult":
        return ImportResult(
            created=self.created + other.created,
            updated=self.updated + other.updated,
            unchanged=self.unchanged + other.unchanged,
            skipped=self.skipped + other.skipped,
        )


def decode_upload(raw: bytes) -> str:
    """Text of an uploaded file: UTF-8 (with or without BOM), else Windows-1252 as Excel saves."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            "The file is not text. Save it as CSV (UTF-8) and try again."
        ) from exc


def _header_key(header: str) -> str:
    return "_".join(header.strip().lstrip("\ufeff").lower().replace("-", " ").split())


def read_rows(
    text: str, custom_fields=(), options: ImportOptions = DEFAULT_OPTIONS
) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """(line, {field: cell}) for each data row, and the columns that will be ignored.

    Columns go to the fields `options.mapping` names, else to those their headers suggest.

    One streaming pass: the row cap stops the reading as soon as the file goes past it.
    Lines are numbered as an editor numbers them (empty lines and cells spanning lines
    count), and CR, LF or CRLF all end a line.
    """
    if "\x00" in text:
        # A binary file or UTF-16 read as UTF-8; PostgreSQL cannot even look such text up.
        raise ImportFileError("The file contains NUL characters. Save it as CSV (UTF-8).")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        headers = next(reader, [])
        columns: dict[int, str] = {}
        ignored = []
        for index, (header, target) in enumerate(
            zip(headers, column_targets(headers, custom_fields, options), strict=True)
        ):
            key = _header_key(header)
            if target:
                columns[index] = target
            elif key and key not in EXPORT_ONLY:
                ignored.append(header.strip())
        if not any(header.strip() for header in headers):
            raise ImportFileError("The file is empty; the first line must name the columns.")
        if "name" not in columns.values() and "id" not in columns.values():
            raise ImportMappingError(
                "The file needs a “name” column (or an “id” column for updates)."
            )
        rows = []
        previous_end = reader.line_num
        for record in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if not record:
                continue
            if len(record) > len(headers):
                raise ImportFileError(
                    f"Line {line} has more cells than the header row; "
                    "check the separators and quotes."
                )
            if len(rows) == MAX_ROWS:
                raise ImportFileError(
                    f"The file has more than {MAX_ROWS:,} rows; import at most {MAX_ROWS:,}."
                )
            cells = {
                name: _unescape(record[index] if index < len(record) else "")
                for index, name in columns.items()
            }
            rows.append((line, cells))
    except csv.Error as exc:
        raise ImportFileError(f"This is not a readable CSV file ({exc}).") from exc
    return rows, ignored


def _unescape(cell) -> str:
    text = ("" if cell is None else str(cell)).strip()
    # The export prefixes formula-like text with an apostrophe; take it off again.
    if text.startswith("'") and text[1:].startswith(FORMULA_STARTS):
        return text[1:]
    return text


def _chunks(items: list, size: int = LOOKUP_CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _parse_value(text: str) -> Decimal:
    cleaned = text.upper().removeprefix("USD").removesuffix("USD")
    for sign in (",", "$", "€", "£", " ", "\u00a0"):
        cleaned = cleaned.replace(sign, "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise ValueError(f"value “{text}” is not a number") from exc
    if not value.is_finite():
        raise ValueError(f"value “{text}” is not a number")
    if value < 0:
        raise ValueError("value cannot be negative")
    try:
        return value.quantize(Decimal("0.01"))
    except InvalidOperation as exc:  # e.g. 1e309: more digits than a Decimal context holds
        raise ValueError(f"value “{text}” is too large") from exc


class _Setup:
    """Pipelines, stages and lost reasons: read once per import, whatever its size."""

    def __init__(self):
        pipelines = list(Pipeline.objects.order_by("position", "id"))
        self.pipelines = {pipeline.name.lower(): pipeline for pipeline in pipelines}
        self.pipelines_by_id = {pipeline.pk: pipeline for pipeline in pipelines}
        self.default_pipeline = next(
            (p for p in self.pipelines.values() if not p.is_archived), None
        )
        self.stages: dict[int, list[Stage]] = defaultdict(list)
        self.stages_by_id: dict[int, Stage] = {}
        for stage in Stage.objects.order_by("position", "id"):
            self.stages[stage.pipeline_id].append(stage)
            self.stages_by_id[stage.pk] = stage
        self.lost_reasons = {reason.name.lower(): reason for reason in LostReason.objects.all()}
        self.stage_by_name: dict[tuple[int, str], Stage] = {}
        for pipeline_stages in self.stages.values():
            for stage in pipeline_stages:
                self.stage_by_name.setdefault((stage.pipeline_id, stage.name.lower()), stage)
        self.custom_fields = list(
            CustomField.objects.filter(is_active=True).prefetch_related("pipelines")
        )
        self.custom_by_key = {custom.key: custom for custom in self.custom_fields}
        self.custom_pipelines = {
            custom.pk: {p.pk for p in custom.pipelines.all()} for custom in self.custom_fields
        }


def _split_list(text: str) -> list[str]:
    """Tags or followers: "a, b" or "a; b" (a semicolon anywhere means semicolons)."""
    separator = ";" if ";" in text else ","
    return [part.strip() for part in text.split(separator) if part.strip()]


class _Lookups:
    """Everything the rows refer to, fetched in a few queries before any row is checked.

    `matchable_before`: only opportunities created before then are matched by contact
    email and name, so a chunk never matches a row an earlier chunk of the same import
    created (the preview, which read the whole file at once, would not have).
    """

    def __init__(self, rows, user, *, lock: bool, setup: _Setup, matchable_before=None):
        self.setup = setup
        self.pipelines = setup.pipelines
        self.pipelines_by_id = setup.pipelines_by_id
        self.default_pipeline = setup.default_pipeline
        self.stages = setup.stages
        self.stages_by_id = setup.stages_by_id
        self.lost_reasons = setup.lost_reasons
        self.stage_by_name = setup.stage_by_name

        self.users = {}
        owners = {cells["owner"].lower() for _, cells in rows if cells.get("owner")}
        for _, cells in rows:
            if cells.get("followers"):
                owners.update(name.lower() for name in _split_list(cells["followers"]))
        users = get_user_model().objects.filter(is_active=True).order_by("id")
        users = users.annotate(
            lower_name=Lower("username"),
            lower_email=Lower("email"),
            lower_full=Lower(Concat("first_name", Value(" "), "last_name")),
        )
        for chunk in _chunks(sorted(owners)):
            found_users = users.filter(
                Q(lower_name__in=chunk) | Q(lower_email__in=chunk) | Q(lower_full__in=chunk)
            )
            for found in found_users:
                for name in (found.lower_name, found.lower_email, found.lower_full.strip()):
                    if name:
                        self.users.setdefault(name, found)

        emails = sorted(
            {cells["contact_email"].lower() for _, cells in rows if cells.get("contact_email")}
        )
        self.contacts: dict[str, Contact] = {}
        contacts = Contact.objects.annotate(lower_email=Lower("email")).order_by("id")
        for chunk in _chunks(emails):
            for contact in contacts.filter(lower_email__in=chunk):
                self.contacts.setdefault(contact.lower_email, contact)

        # Only opportunities the user can see may be updated; the rest do not exist here.
        # The event payload shows the contact and the owner: loaded here, not row by row.
        visible = opportunities_visible_to(user).select_related("contact", "assigned_to")
        visible = visible.order_by("id")
        if lock:
            visible = visible.select_for_update(of=("self",))
        ids = {int(cells["id"]) for _, cells in rows if cells.get("id", "").isdigit()}
        # Larger ids cannot exist, and SQLite refuses them as parameters (OverflowError).
        ids = sorted(pk for pk in ids if pk < 2**63)
        self.by_id: dict[int, Opportunity] = {}
        for chunk in _chunks(ids):
            for opportunity in visible.filter(pk__in=chunk):
                self.by_id[opportunity.pk] = opportunity
        self.by_email_name: dict[tuple[str, str], list[Opportunity]] = defaultdict(list)
        with_email = visible.annotate(lower_email=Lower("contact__email"))
        if matchable_before is not None:
            with_email = with_email.filter(created_at__lt=matchable_before)
        for chunk in _chunks(emails):
            for opportunity in with_email.filter(lower_email__in=chunk):
                key = (opportunity.lower_email, opportunity.name.strip().lower())
                self.by_email_name[key].append(opportunity)

        # What the matched opportunities hold beside their row, for the columns present.
        present = set(rows[0][1]) if rows else set()
        matched = sorted(
            {o.pk for o in self.by_id.values()}
            | {o.pk for found in self.by_email_name.values() for o in found}
        )
        self.tags_of: dict[int, list[str]] = defaultdict(list)
        self.followers_of: dict[int, list[int]] = defaultdict(list)
        self.custom_of: dict[int, dict[int, CustomFieldValue]] = defaultdict(dict)
        custom_ids = [
            setup.custom_by_key[t.removeprefix(CUSTOM_PREFIX)].pk
            for t in present
            if t.startswith(CUSTOM_PREFIX) and t.removeprefix(CUSTOM_PREFIX) in setup.custom_by_key
        ]
        for chunk in _chunks(matched):
            if "tags" in present:
                through = Opportunity.tags.through.objects.filter(opportunity_id__in=chunk)
                for pk, name in through.values_list("opportunity_id", "tag__name"):
                    self.tags_of[pk].append(name)
            if "followers" in present:
                through = Opportunity.followers.through.objects.filter(opportunity_id__in=chunk)
                for pk, user_id in through.values_list("opportunity_id", "user_id"):
                    self.followers_of[pk].append(user_id)
            if custom_ids:
                stored = CustomFieldValue.objects.filter(
                    opportunity_id__in=chunk, field_id__in=custom_ids
                ).select_related("field")
                for row in stored:
                    self.custom_of[row.opportunity_id][row.field_id] = row

        # Contacts this import would create, one per new email, shared by its rows.
        self.new_contacts: dict[str, Contact] = {}
        self.email_is_valid: dict[str, bool] = {}

    def stage_named(self, pipeline: Pipeline, name: str) -> Stage | None:
        return self.stage_by_name.get((pipeline.pk, name.strip().lower()))

    def valid_email(self, email: str) -> bool:
        if email not in self.email_is_valid:
            try:
                validate_email(email)
            except ValidationError:
                self.email_is_valid[email] = False
            else:
                self.email_is_valid[email] = True
        return self.email_is_valid[email]

    def first_stage(self, pipeline: Pipeline) -> Stage | None:
        stages = self.stages[pipeline.pk]
        return stages[0] if stages else None


def _plan_row(
    line: int,
    cells: dict[str, str],
    lookups: _Lookups,
    user,
    now,
    options: ImportOptions = DEFAULT_OPTIONS,
) -> PlannedRow:
    """What one row would do; raises ValidationError with every reason it cannot be imported."""
    reasons: list[str] = []
    existing: Opportunity | None = None
    if cells.get("id"):
        if not cells["id"].isdigit():
            reasons.append(f"id “{cells['id']}” is not a number")
        else:
            existing = lookups.by_id.get(int(cells["id"]))
            if existing is None:
                reasons.append(f"there is no opportunity #{cells['id']} that you can see")
    elif cells.get("contact_email") and cells.get("name"):
        matches = lookups.by_email_name.get(
            (cells["contact_email"].lower(), cells["name"].lower()), []
        )
        if len(matches) > 1:
            ids = ", ".join(f"#{match.pk}" for match in matches[:5])
            reasons.append(
                f"{len(matches)} opportunities match this contact and name ({ids}); "
                "add an id column"
            )
        elif matches:
            existing = matches[0]
    if not reasons and existing is not None and options.mode == "create":
        reasons.append(f"this row is opportunity #{existing.pk}, and the import only creates")
    elif not reasons and existing is None and options.mode == "update":
        reasons.append("no opportunity matches this row (by id, or contact email and name)")
    if reasons:
        raise ValidationError(reasons)
    # An empty cell clears the value only in updates whose options say so.
    clears = existing is not None and not options.keep_when_empty

    def emptied(name: str) -> bool:
        return clears and name in cells and not cells[name]

    is_new = existing is None
    if is_new:
        opportunity = Opportunity(
            status=Status.OPEN, value=Decimal(0), created_at=now, updated_at=now, version=1
        )
        old_stage_id, old_status = None, ""
        if not can_view_all(user):
            # Otherwise the importer could not see what they just created.
            opportunity.assigned_to = user
    else:
        # A copy: a row refused halfway, or a later row naming the same opportunity, must
        # not leave its changes on the object another row will save.
        opportunity = copy.copy(existing)
        old_stage_id, old_status = existing.stage_id, existing.status
        before = snapshot(existing)
        # From the lookups, so showing the row in the preview runs no query.
        opportunity.pipeline = lookups.pipelines_by_id[existing.pipeline_id]
        opportunity.stage = lookups.stages_by_id[existing.stage_id]

    if cells.get("name"):
        opportunity.name = cells["name"]
    elif is_new:
        reasons.append("name is missing")

    pipeline = _pipeline_named(lookups, cells.get("pipeline", ""))
    stage_by_id = None
    if cells.get("stage", "").isdigit():
        stage_by_id = lookups.stages_by_id.get(int(cells["stage"]))
        if stage_by_id is not None and pipeline is None and not cells.get("pipeline"):
            # A stage id names its pipeline.
            pipeline = lookups.pipelines_by_id[stage_by_id.pipeline_id]
    if cells.get("pipeline") and pipeline is None:
        reasons.append(f"there is no pipeline “{cells['pipeline']}”")
    elif pipeline is None and is_new:
        pipeline = lookups.default_pipeline
        if pipeline is None:
            reasons.append("there is no open pipeline to import into")
    if pipeline is not None and is_new and pipeline.is_archived:
        reasons.append(f"the pipeline “{pipeline.name}” is archived")

    stage = None
    target_pipeline = pipeline or (
        None if is_new else lookups.pipelines_by_id[existing.pipeline_id]
    )
    if target_pipeline is not None:
        if cells.get("stage"):
            stage = lookups.stage_named(target_pipeline, cells["stage"])
            if stage is None and stage_by_id and stage_by_id.pipeline_id == target_pipeline.pk:
                stage = stage_by_id
            if stage is None:
                reasons.append(f"there is no stage “{cells['stage']}” in “{target_pipeline.name}”")
        elif is_new or target_pipeline.pk != existing.pipeline_id:
            # Keeps the stage inside its pipeline when the pipeline changes.
            stage = lookups.first_stage(target_pipeline)
            if stage is None:
                reasons.append(f"the pipeline “{target_pipeline.name}” has no stages")
    if stage is not None:
        opportunity.pipeline, opportunity.stage = target_pipeline, stage

    if cells.get("value"):
        try:
            opportunity.value = _parse_value(cells["value"])
        except ValueError as exc:
            reasons.append(str(exc))
    elif emptied("value"):
        opportunity.value = Decimal(0)

    if cells.get("expected_close_date"):
        close_date = parse_date(cells["expected_close_date"])
        if close_date is None:
            reasons.append(
                f"close date “{cells['expected_close_date'][:40]}” is not a date "
                "like 12/31/2026 or 2026-12-31"
            )
        else:
            if (
                not is_new
                and existing.expected_close_date
                and close_date > existing.expected_close_date
            ):
                opportunity.close_date_slips = existing.close_date_slips + 1
            opportunity.expected_close_date = close_date
    elif emptied("expected_close_date"):
        opportunity.expected_close_date = None

    status = None
    if cells.get("status"):
        status = _STATUS_BY_TEXT.get(cells["status"].lower())
        if status is None:
            reasons.append(f"status “{cells['status']}” is not one of Open, Won, Lost, Abandoned")
    lost_reason = None
    if cells.get("lost_reason"):
        lost_reason = lookups.lost_reasons.get(cells["lost_reason"].lower())
        if lost_reason is None:
            reasons.append(f"there is no lost reason “{cells['lost_reason']}”")
        elif not lost_reason.is_active:
            reasons.append(f"the lost reason “{lost_reason.name}” is no longer offered")
        elif status is None:
            status = Status.LOST
        elif status != Status.LOST:
            reasons.append("a lost reason only goes with status Lost")
    keeps_reason = False
    if status == Status.LOST and lost_reason is None and not cells.get("lost_reason"):
        # "Lost" alone is enough for an opportunity that already has its reason.
        keeps_reason = opportunity.lost_reason_id is not None
        if not keeps_reason:
            reasons.append("a lost opportunity needs a lost reason")
    if status is not None:
        opportunity.status = status
        if not keeps_reason:
            opportunity.lost_reason = lost_reason if status == Status.LOST else None

    if cells.get("owner"):
        owner = lookups.users.get(cells["owner"].lower())
        if owner is None:
            reasons.append(f"there is no active user “{cells['owner']}”")
        else:
            opportunity.assigned_to = owner
    elif emptied("owner") and can_view_all(user):
        # Only someone who sees every deal may leave one without an owner.
        opportunity.assigned_to = None

    if "source" in cells and (cells["source"] or is_new or clears):
        opportunity.source = cells["source"]

    planned = PlannedRow(line=line, opportunity=opportunity, is_new=is_new)
    planned.old_stage_id, planned.old_status = old_stage_id, old_status
    email = cells.get("contact_email", "")
    if email:
        key = email.lower()
        if not lookups.valid_email(email):
            reasons.append(f"contact email “{email}” is not valid")
        elif key in lookups.contacts:
            opportunity.contact = lookups.contacts[key]
        else:
            # The first row naming a new email gives the new contact its details.
            planned.new_contact = lookups.new_contacts.get(key)
            if planned.new_contact is None:
                planned.new_contact = lookups.new_contacts[key] = Contact(
                    name=cells.get("contact_name") or email.split("@")[0],
                    email=email,
                    phone=cells.get("contact_phone", ""),
                    company=cells.get("company", ""),
                )
    elif cells.get("contact_name"):
        planned.new_contact = Contact(
            name=cells["contact_name"],
            phone=cells.get("contact_phone", ""),
            company=cells.get("company", ""),
        )

    _plan_related(planned, cells, lookups, existing, emptied, reasons)

    reasons.extend(_field_errors(opportunity, OPPORTUNITY_CELLS))
    if planned.new_contact is not None:
        reasons.extend(_field_errors(planned.new_contact, CONTACT_CELLS, prefix="contact "))
    if reasons:
        raise ValidationError(reasons)

    if not is_new:
        planned.before = before
        planned.changed = (
            planned.new_contact is not None
            or snapshot(opportunity) != before
            or any(old != new for old, new in planned.extra.values())
        )
    return planned


def _pipeline_named(lookups: _Lookups, text: str) -> Pipeline | None:
    if not text:
        return None
    found = lookups.pipelines.get(text.lower())
    if found is None and text.isdigit():
        found = lookups.pipelines_by_id.get(int(text))
    return found


def _plan_related(planned: PlannedRow, cells, lookups: _Lookups, existing, emptied, reasons):
    """Tags, followers and custom values of the row: parsed, checked, compared."""
    pk = existing.pk if existing is not None else None
    if cells.get("tags") or emptied("tags"):
        try:
            planned.tags = clean_tag_names(_split_list(cells["tags"]))
        except ValidationError as exc:
            reasons.extend(exc.messages)
        else:
            old = sorted(lookups.tags_of.get(pk, []), key=str.lower)
            new = sorted(planned.tags, key=str.lower)
            if [n.lower() for n in old] == [n.lower() for n in new]:
                planned.tags = None  # the same tags: nothing to write
            else:
                planned.extra["tags"] = (old, new)

    if cells.get("followers") or emptied("followers"):
        followers, unknown = {}, []
        for name in _split_list(cells["followers"]):
            user = lookups.users.get(name.lower())
            if user is None:
                unknown.append(name)
            else:
                followers[user.pk] = user
        if unknown:
            reasons.append(f"there is no active user “{unknown[0][:50]}” to follow")
        elif len(followers) > MAX_FOLLOWERS:
            reasons.append(f"at most {MAX_FOLLOWERS} followers per opportunity")
        else:
            old = sorted(lookups.followers_of.get(pk, []))
            if old != sorted(followers):
                planned.followers = list(followers.values())
                planned.extra["followers"] = (old, sorted(followers))

    pipeline_id = planned.opportunity.pipeline_id
    for target, cell in cells.items():
        if not target.startswith(CUSTOM_PREFIX) or not (cell or emptied(target)):
            continue
        custom = lookups.setup.custom_by_key.get(target.removeprefix(CUSTOM_PREFIX))
        if custom is None:
            continue
        only = lookups.setup.custom_pipelines[custom.pk]
        if only and pipeline_id not in only:
            if cell:
                reasons.append(f"{custom.name} is not a field of this opportunity's pipeline")
            continue
        try:
            value = parse_value(custom, cell)
        except ValidationError as exc:
            reasons.extend(exc.messages)
            continue
        stored = lookups.custom_of.get(pk, {}).get(custom.pk)
        old = value_of(stored) if stored is not None else None
        if old != value:
            planned.custom[custom] = (value, stored)
            planned.extra[target] = (old, value)
    if existing is None and pipeline_id is not None:
        _require_custom_values(planned, cells, lookups.setup, pipeline_id, reasons)


def _require_custom_values(planned: PlannedRow, cells, setup: "_Setup", pipeline_id, reasons):
    """A new deal gets every required field of its pipeline, as the form and the API ask;
    a file without the column (or an empty cell) cannot create one without it. Updates
    only need what they touch (emptying a required field is refused by parse_value)."""
    for custom in setup.custom_fields:
        only = setup.custom_pipelines[custom.pk]
        if not custom.required or (only and pipeline_id not in only):
            continue
        if cells.get(CUSTOM_PREFIX + custom.key):
            continue  # given: a bad value has its own message above
        if planned.custom.get(custom, (None,))[0] is None:
            reasons.append(f"“{custom.name}” is required")


def _field_errors(instance, fields, *, prefix: str = "") -> list[str]:
    errors = []
    for model_field in fields:
        value = getattr(instance, model_field.attname)
        if value in model_field.empty_values:
            continue
        try:
            model_field.run_validators(value)
        except ValidationError as exc:
            errors.extend(f"{prefix}{model_field.verbose_name}: {m}" for m in exc.messages)
    return errors


def _plan_rows(
    rows,
    user,
    lookups: _Lookups,
    plan: ImportPlan,
    skip_lines=frozenset(),
    options: ImportOptions = DEFAULT_OPTIONS,
):
    seen: dict[int, int] = {}
    now = timezone.now()
    for line, cells in rows:
        if not any(cells.values()):
            continue  # a spreadsheet's empty row
        if line in skip_lines:
            plan.errors.append(RowError(line=line, name=cells.get("name", ""), reasons=[]))
            continue
        try:
            planned = _plan_row(line, cells, lookups, user, now, options)
        except ValidationError as exc:
            plan.errors.append(
                RowError(line=line, name=cells.get("name", ""), reasons=exc.messages)
            )
            continue
        if not planned.is_new:
            first_line = seen.setdefault(planned.opportunity.pk, line)
            if first_line != line:
                plan.errors.append(
                    RowError(
                        line=line,
                        name=cells.get("name", ""),
                        reasons=[f"the same opportunity is already on line {first_line}"],
                    )
                )
                continue
        plan.rows.append(planned)
    return plan


def import_plan(
    *, text: str, user, options: ImportOptions = DEFAULT_OPTIONS, setup: "_Setup | None" = None
) -> ImportPlan:
    """Validate every row of the file and say what importing it would do. Writes nothing."""
    setup = setup or _Setup()
    rows, ignored = read_rows(text, setup.custom_fields, options)
    lookups = _Lookups(rows, user, lock=False, setup=setup)
    headers = read_headers(text)
    targets = column_targets(headers, setup.custom_fields, options)
    plan = ImportPlan(
        ignored_columns=ignored,
        columns=list(zip(headers, targets, strict=True)),
        custom_fields=setup.custom_fields,
    )
    return _plan_rows(rows, user, lookups, plan, options=options)


def keys_after(last: str | None, count: int) -> list[str]:
    """`count` ascending rank keys that all sort after `last`, a column's last key.

    The keys are a prefix, a "0", then evenly spread suffixes (three or four digits for
    50,000 rows). The prefix is `last` up to its first digit that can still grow, with
    that digit grown by one; the "0" keeps the suffixes below any digit the next import
    will grow, so the next import into the column grows the same digit again. Imports
    do not lengthen keys: one digit more every 61 imports (or chunks) into one column.
    """
    last = last or DIGIT_ZERO
    prefix = last  # only top digits: only a longer key sorts after it
    for position, char in enumerate(last):
        value = ranking.DIGITS.index(char)
        if value + 1 < ranking.BASE:
            prefix = last[:position] + ranking.DIGITS[value + 1]
            break
    return [prefix + DIGIT_ZERO + suffix for suffix in ranking.spaced_keys(count)]


def _respace_for_append(stage_id: int, count: int) -> list[str]:
    """Re-space the column (order kept, versions untouched); return keys for `count` more."""
    ids = list(
        Opportunity.objects.filter(stage_id=stage_id)
        .order_by("rank", "id")
        .values_list("id", flat=True)
    )
    keys = list(ranking.spaced_keys(len(ids) + count))
    Opportunity.objects.bulk_update(
        [Opportunity(pk=pk, rank=key) for pk, key in zip(ids, keys, strict=False)],
        ["rank"],
        batch_size=BATCH_SIZE,
    )
    return keys[len(ids) :]


def _append_ranks(rows: list[PlannedRow]) -> None:
    """Give the rows entering each stage keys after that stage's last card, in file order.

    Keys stay short import after import (see keys_after); a column whose last key is
    nevertheless too long is re-spaced first, as a move would.
    """
    entering: dict[int, list[PlannedRow]] = defaultdict(list)
    for row in rows:
        if row.is_new or row.stage_changed:
            entering[row.opportunity.stage_id].append(row)
    if not entering:
        return
    last_keys = dict(
        Opportunity.objects.filter(stage__in=list(entering))
        .order_by()
        .values("stage")
        .annotate(last=Max("rank"))
        .values_list("stage", "last")
    )
    for stage_id, stage_rows in entering.items():
        keys = keys_after(last_keys.get(stage_id), len(stage_rows))
        if len(keys[-1]) > ranking.MAX_KEY_LENGTH:
            keys = _respace_for_append(stage_id, len(stage_rows))
        for row, key in zip(stage_rows, keys, strict=True):
            row.opportunity.rank = key


def _write(plan: ImportPlan, user) -> ImportResult:
    """Write the planned rows with a few bulk statements; the caller holds the transaction."""
    now = timezone.now()
    # Contacts first (rows naming the same new email share one Contact object).
    new_contacts = {id(row.new_contact): row.new_contact for row in plan.rows if row.new_contact}
    Contact.objects.bulk_create(list(new_contacts.values()), batch_size=BATCH_SIZE)
    for row in plan.rows:
        if row.new_contact is not None:
            row.opportunity.contact = row.new_contact

    changed = [row for row in plan.rows if row.is_new or row.changed]
    _append_ranks(changed)
    for row in changed:
        opportunity = row.opportunity
        if row.stage_changed:
            opportunity.stage_entered_at = now
        if row.status_changed:
            opportunity.status_changed_at = (
                now if (row.old_status or opportunity.status != Status.OPEN) else None
            )
            opportunity.closed_at = now if opportunity.status in CLOSED_STATUSES else None
        opportunity.updated_at = now

    created = [row for row in changed if row.is_new]
    updated = [row for row in changed if not row.is_new]
    Opportunity.objects.bulk_create([row.opportunity for row in created], batch_size=BATCH_SIZE)
    for row in updated:
        row.opportunity.version += 1
    Opportunity.objects.bulk_update(
        [row.opportunity for row in updated], UPDATED_FIELDS, batch_size=BATCH_SIZE
    )
    _write_related(changed)
    # One history row per tracked field that changed and the events, in a few statements.
    changes_record(
        user=user, items=[(row.before, row.opportunity, row.extra) for row in changed], at=now
    )
    return ImportResult(
        created=len(created),
        updated=len(updated),
        unchanged=plan.unchanged,
        skipped=len(plan.errors),
    )


def _write_related(rows: list[PlannedRow]) -> None:
    """Tags, followers and custom values of the written rows, in bulk statements."""
    tagged = [row for row in rows if row.tags is not None]
    if tagged:
        names = {name.lower(): name for row in tagged for name in row.tags}
        tags = {tag.name.lower(): tag for tag in tags_resolve(list(names.values()))}
        through = Opportunity.tags.through
        through.objects.filter(opportunity_id__in=[r.opportunity.pk for r in tagged]).delete()
        through.objects.bulk_create(
            [
                through(opportunity_id=row.opportunity.pk, tag_id=tags[name.lower()].pk)
                for row in tagged
                for name in row.tags
            ],
            batch_size=BATCH_SIZE,
        )
    followed = [row for row in rows if row.followers is not None]
    if followed:
        through = Opportunity.followers.through
        through.objects.filter(opportunity_id__in=[r.opportunity.pk for r in followed]).delete()
        through.objects.bulk_create(
            [
                through(opportunity_id=row.opportunity.pk, user_id=user.pk)
                for row in followed
                for user in row.followers
            ],
            batch_size=BATCH_SIZE,
        )
    creates, updates, clears = [], [], []
    for row in rows:
        for custom, (value, stored) in row.custom.items():
            if stored is None:
                if value is not None:
                    columns = columns_for(custom, value)
                    creates.append(
                        CustomFieldValue(opportunity_id=row.opportunity.pk, field=custom, **columns)
                    )
            elif value is None:
                clears.append(stored.pk)
            else:
                for name, column_value in columns_for(custom, value).items():
                    setattr(stored, name, column_value)
                updates.append(stored)
    for chunk in _chunks(clears):
        CustomFieldValue.objects.filter(pk__in=chunk).delete()
    CustomFieldValue.objects.bulk_create(creates, batch_size=BATCH_SIZE)
    CustomFieldValue.objects.bulk_update(
        updates, ["text", "number", "date", "flag"], batch_size=BATCH_SIZE
    )


UPDATED_FIELDS = [
    "name",
    "pipeline",
    "stage",
    "value",
    "status",
    "lost_reason",
    "assigned_to",
    "source",
    "contact",
    "rank",
    "stage_entered_at",
    "status_changed_at",
    "closed_at",
    "expected_close_date",
    "close_date_slips",
    "updated_at",
    "version",
]


def _versions_hold(plan: ImportPlan) -> bool:
    """Whether the opportunities the plan updates still have the versions it read (locked)."""
    expected = {
        row.opportunity.pk: row.opportunity.version
        for row in plan.rows
        if not row.is_new and row.changed
    }
    current = {}
    for chunk in _chunks(sorted(expected)):
        locked = Opportunity.objects.select_for_update().filter(pk__in=chunk)
        current.update(locked.values_list("pk", "version"))
    return current == expected


def _apply_chunk(
    rows,
    *,
    user,
    setup: _Setup,
    skip_lines,
    matchable_before,
    inside=None,
    options: ImportOptions = DEFAULT_OPTIONS,
) -> ImportResult:
    """Plan `rows`, then write them in one short transaction; `inside(result)` joins it.

    The rows are checked before the transaction, so others' writes wait only for the
    bulk statements (SQLite has one writer). Inside, the opportunities to update are
    locked and their versions compared with the plan's: if anyone changed one meanwhile,
    the chunk is planned again under lock, so no one's change is overwritten.
    """

    def planned(lock: bool) -> ImportPlan:
        lookups = _Lookups(rows, user, lock=lock, setup=setup, matchable_before=matchable_before)
        return _plan_rows(rows, user, lookups, ImportPlan(), skip_lines, options)

    plan = planned(lock=False)
    with transaction.atomic():
        if not _versions_hold(plan):
            plan = planned(lock=True)
        result = _write(plan, user)
        if inside is not None:
            inside(result)
    return result


def _pause_for_other_writers() -> None:
    # SQLite has one writer: between two chunks, give the requests waiting for the lock
    # (their busy handler polls every few ms) a moment to take it.
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        time.sleep(CHUNK_PAUSE)


def import_apply(
    *,
    text: str,
    user,
    expected: str | None = None,
    chunk_size: int | None = None,
    options: ImportOptions = DEFAULT_OPTIONS,
) -> ImportResult:
    """Write the good rows of the file; rows with errors are skipped, as the preview said.

    Invariants: the file is validated again here (nothing from the preview is trusted);
    with `expected` (the preview's fingerprint), nothing is written unless the rows would
    be imported exactly as previewed; each chunk of `chunk_size` rows is checked again
    and written in its own short transaction, with a version check of the rows it
    updates (others' writes wait for one chunk's bulk statements, not the whole file);
    every stage belongs to its opportunity's pipeline; a lost reason iff Lost; closed_at
    set for closed statuses; only opportunities visible to `user` are updated, each with
    its version bumped; one history row per tracked field that changed and the events of
    each created or changed opportunity (changes_record), in the chunk's transaction.
    """
    ensure_permission(user, "import_opportunities", NOT_ALLOWED)
    setup = _Setup()
    rows, ignored = read_rows(text, setup.custom_fields, options)
    started = timezone.now()
    plan = _plan_rows(
        rows,
        user,
        _Lookups(rows, user, lock=False, setup=setup),
        ImportPlan(ignored_columns=ignored),
        options=options,
    )
    if expected is not None and plan.fingerprint != expected:
        raise ImportChanged(plan.fingerprint)
    skip_lines = frozenset(error.line for error in plan.errors)
    chunk_size = chunk_size or BATCH_SIZE
    total = ImportResult(created=0, updated=0, unchanged=0, skipped=0)
    for start in range(0, len(rows), chunk_size):
        if start:
            _pause_for_other_writers()
        result = _apply_chunk(
            rows[start : start + chunk_size],
            user=user,
            setup=setup,
            skip_lines=skip_lines,
            matchable_before=started,
            options=options,
        )
        total = total + result
    return total


class ImportAlreadyConfirmed(Exception):
    """This preview was confirmed before: its import runs (or ran) once, not again."""


class _ChunkTaken(Exception):
    """Another request wrote this chunk first; roll back and read the progress again."""


RUN_KEEP = timedelta(days=1)
NOT_ALLOWED = "You are not allowed to import opportunities."


def import_prepare(
    *, text: str, filename: str, user, options: ImportOptions | None = None
) -> tuple[ImportPlan, ImportRun]:
    """Plan the file and keep it for the confirm; the run's id is the preview's token.

    Runs older than a day are removed here, so abandoned previews do not pile up.
    """
    ensure_permission(user, "import_opportunities", NOT_ALLOWED)
    options = options or DEFAULT_OPTIONS
    plan = _plan_for_mapping(text=text, user=user, options=options)
    ImportRun.objects.filter(created_at__lt=timezone.now() - RUN_KEEP).delete()
    run = ImportRun.objects.create(
        user=user, filename=filename[:255], text=text, options=options.as_json()
    )
    return plan, run


def import_remap(*, run_id, user, options: ImportOptions) -> tuple[ImportPlan, ImportRun]:
    """Keep the mapping step's choices on a previewed (unconfirmed) run and plan again.

    Invariant: a confirmed run's choices never change; the confirm and every chunk plan
    with the choices stored here.
    """
    ensure_permission(user, "import_opportunities", NOT_ALLOWED)
    run = ImportRun.objects.get(pk=run_id, user=user, confirmed_at__isnull=True)
    plan = _plan_for_mapping(text=run.text, user=user, options=options)
    run.options = options.as_json()
    ImportRun.objects.filter(pk=run.pk, confirmed_at__isnull=True).update(options=run.options)
    return plan, run


def _plan_for_mapping(*, text: str, user, options: ImportOptions) -> ImportPlan:
    """The plan, or, when no column is mapped to the name, the columns and the problem."""
    setup = _Setup()
    try:
        return import_plan(text=text, user=user, options=options, setup=setup)
    except ImportMappingError as exc:
        headers = read_headers(text)
        targets = column_targets(headers, setup.custom_fields, options)
        return ImportPlan(
            columns=list(zip(headers, targets, strict=True)),
            custom_fields=setup.custom_fields,
            problem=str(exc),
        )


def run_options(run: ImportRun) -> ImportOptions:
    return ImportOptions.from_json(run.options)


def import_confirm(*, run_id, user, fingerprint: str) -> ImportRun:
    """Spend the preview's token and check the rows still import as previewed.

    Invariant: of any number of confirms of one preview, exactly one gets past the claim
    (a single conditional UPDATE); the others raise ImportAlreadyConfirmed. Nothing is
    written here but the claim; `import_continue` writes the rows.
    """
    ensure_permission(user, "import_opportunities", NOT_ALLOWED)
    if not ImportRun.objects.claim(run_id, user):
        if ImportRun.objects.filter(pk=run_id, user=user).exists():
            raise ImportAlreadyConfirmed(run_id)
        raise ImportRun.DoesNotExist(run_id)
    run = ImportRun.objects.get(pk=run_id)
    setup = _Setup()
    try:
        plan = import_plan(text=run.text, user=user, options=run_options(run), setup=setup)
    except ImportFileError as exc:
        ImportRun.objects.close(run.pk, str(exc))
        raise
    if plan.fingerprint != fingerprint:
        ImportRun.objects.close(run.pk, "The data changed since the preview.")
        raise ImportChanged(plan.fingerprint)
    rows = _run_rows(run, setup)
    run.skip_lines = [error.line for error in plan.errors]
    run.rows_total = len(rows)
    ImportRun.objects.planned(run.pk, skip_lines=run.skip_lines, rows_total=run.rows_total)
    return run


def import_continue(
    *, run: ImportRun, user, seconds: float | None = 1.0, chunk_size: int | None = None
) -> ImportRun:
    """Write the next chunks of a confirmed import for about `seconds` (None: to the end).

    Invariant: each chunk is written in one transaction together with the run's progress,
    guarded by the progress it started from, so two requests continuing one import never
    write a chunk twice; rows are checked again as in `import_apply`.
    """
    ensure_permission(user, "import_opportunities", NOT_ALLOWED)
    if run.confirmed_at is None or run.user_id != user.pk:
        raise ImportRun.DoesNotExist(run.pk)
    if run.finished_at is not None:
        return run
    setup = _Setup()
    rows = _run_rows(run, setup)
    options = run_options(run)
    skip_lines = frozenset(run.skip_lines)
    chunk_size = chunk_size or BATCH_SIZE
    deadline = None if seconds is None else time.monotonic() + seconds
    first = True
    while run.rows_done < len(rows):
        if not first:
            if deadline is not None and time.monotonic() >= deadline:
                break
            _pause_for_other_writers()
        first = False
        start = run.rows_done
        end = min(start + chunk_size, len(rows))

        def advance(result, start=start, end=end):
            finished = end == len(rows)
            counts = dataclasses.asdict(result)
            if not ImportRun.objects.advance(
                run.pk, start=start, end=end, counts=counts, finished=finished
            ):
                raise _ChunkTaken

        # Another request wrote this chunk first: its transaction rolled back, read on.
        with contextlib.suppress(_ChunkTaken):
            _apply_chunk(
                rows[start:end],
                user=user,
                setup=setup,
                skip_lines=skip_lines,
                matchable_before=run.confirmed_at,
                inside=advance,
                options=options,
            )
        run.refresh_from_db(fields=PROGRESS_FIELDS)
        if run.finished_at is not None:
            _parsed_runs.pop(run.pk, None)
            break
    return run


PROGRESS_FIELDS = ["rows_done", "created", "updated", "unchanged", "skipped", "finished_at"]
# The rows of the import this process is continuing: the browser's steps come back on
# the same connection, so most steps skip reading the file again (one import kept).
_parsed_runs: dict = {}


def _run_rows(run: ImportRun, setup: _Setup) -> list:
    # The run's choices are fixed once it is confirmed, so its id names its rows.
    rows = _parsed_runs.get(run.pk)
    if rows is None:
        rows, _ = read_rows(run.text, setup.custom_fields, run_options(run))
        _parsed_runs.clear()
        _parsed_runs[run.pk] = rows
    return rows
