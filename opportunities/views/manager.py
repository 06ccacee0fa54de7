"""The manager's list of opportunities: filters, summary, charts, CSV export and import."""

import uuid

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core import signing
from django.core.exceptions import RequestDataTooBig
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from imports_log.models import ImportRun
from opportunities.exports import export_filename, export_response
from opportunities.filters_manager import (
    SORT_FIELDS,
    ManagerOpportunityFilter,
    QuickView,
    month_start,
    quick_view_conditions,
)
from opportunities.list_figures import list_figures, quick_view_counts_known, unfiltered
from opportunities.models import Status
from opportunities.reports import (
    filter_options,
    list_rows,
    quick_view_counts,
    with_days_open_count,
)
from opportunities.selectors import opportunities_visible_to
from opportunities.services.bulk import ACTION_CHOICES
from opportunities.services.imports import (
    MODES,
    ImportAlreadyConfirmed,
    ImportChanged,
    ImportFileError,
    ImportOptions,
    decode_upload,
    field_choices,
    import_confirm,
    import_continue,
    import_prepare,
    import_remap,
    run_options,
)

LIST = "opportunities/list.html"
IMPORT = "opportunities/import.html"
PAGE_SIZE = 50
EXPORT_PERMISSION = "opportunities.export_opportunities"
IMPORT_PERMISSION = "opportunities.import_opportunities"
# The preview's token (the signed id of its stored file) is honoured for this long.
IMPORT_TOKEN_MAX_AGE = 60 * 60
IMPORT_SALT = "opportunities.import"
MAX_UPLOAD_BYTES = settings.IMPORT_MAX_FILE_BYTES
PREVIEW_ROWS = 25
# Writing time per request of a big import; the progress page asks for the next step.
IMPORT_STEP_SECONDS = 1.0
# The same without JavaScript: fewer clicks, well within a worker's timeout.
IMPORT_PAGE_STEP_SECONDS = 20.0

# (sort key, header, right-aligned); the keys are ManagerOpportunityFilter's whitelist.
TABLE_COLUMNS = [
    ("name", "Opportunity", False),
    ("contact", "Contact", False),
    ("pipeline", "Pipeline", False),
    ("stage", "Stage", False),
    ("status", "Status", False),
    ("value", "Value", True),
    ("owner", "Owner", False),
    ("source", "Source", False),
    ("created", "Created", False),
    ("closed", "Closed", False),
    ("days_open", "Days open", True),
]
assert {key for key, _, _ in TABLE_COLUMNS} == set(SORT_FIELDS)
# Filters tucked under "More filters"; the panel opens when one of them is set.
ADVANCED_PARAMS = (
    "source",
    "lost_reason",
    "value_min",
    "value_max",
    "created_after",
    "created_before",
    "closed_after",
    "closed_before",
    "tag",
    "cf",
)


def _filtered(request) -> ManagerOpportunityFilter:
    return ManagerOpportunityFilter(request.GET, queryset=opportunities_visible_to(request.user))


def _sort_headers(current: str) -> list[dict]:
    headers = []
    for key, label, numeric in TABLE_COLUMNS:
        if current == key:
            aria, next_sort = "ascending", f"-{key}"
        elif current == f"-{key}":
            aria, next_sort = "descending", key
        else:
            # Numbers and dates read best largest / newest first.
            aria, next_sort = None, f"-{key}" if numeric or key in ("created", "closed") else key
        headers.append(
            {"key": key, "label": label, "numeric": numeric, "aria_sort": aria, "next": next_sort}
        )
    return headers


def _quick_views(request, figures: dict) -> list[tuple[str, str, int]]:
    """(key, label, count) per quick view, over every visible deal whatever the filters.

    Without filters the figures describe that very set and hold three of the counts;
    only the rest are counted, in one query (each a read of its own index range).
    """
    known = {}
    if unfiltered(dict(request.GET.lists())):
        known = quick_view_counts_known(figures, month_start().date())
    conditions = {
        key: condition for key, condition in quick_view_conditions().items() if key not in known
    }
    counts = known | quick_view_counts(opportunities_visible_to(request.user), conditions)
    return [(key, label, counts[key]) for key, label in QuickView.choices]


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def opportunity_list(request):
    """The page, or for htmx the results (filter change) or the whole panel (links)."""
    filterset = _filtered(request)
    queryset = filterset.qs
    # Tags for the shown page only: one query, whatever the filters.
    rows = list_rows(queryset).prefetch_related("tags")
    # Summary and charts: computed once per data state and filters, whatever the page/sort.
    figures = list_figures(request, queryset)
    paginator = Paginator(rows, PAGE_SIZE)
    # The summary counted this very set already: no second COUNT over it for the pages.
    paginator.count = figures["summary"].count
    page = paginator.get_page(request.GET.get("page"))
    page.object_list = with_days_open_count(list(page.object_list))
    context = {
        "nav": "list",
        "filter": filterset,
        "page": page,
        **figures,
        "headers": _sort_headers(filterset.sort_value),
        "sort": filterset.sort_value,
        "selected_statuses": filterset.statuses,
        "quick_view": filterset.quick_view,
        "can_import": request.user.has_perm(IMPORT_PERMISSION),
        "exports_own_only": not request.user.has_perm(EXPORT_PERMISSION),
    }
    target = request.htmx.target if request.htmx else None
    if target == "results":
        return render(request, LIST + "#results", context)
    if target == "cf-inputs":
        return render(request, LIST + "#cf_inputs", context)
    context |= {
        "statuses": Status.choices,
        "bulk_actions": ACTION_CHOICES,
        "quick_views": _quick_views(request, figures),
        **filter_options(request.user),
        "advanced_open": any(request.GET.get(name) for name in ADVANCED_PARAMS),
    }
    return render(request, LIST + "#manager" if target == "manager" else LIST, context)


@require_GET
def export_csv(request):
    """Exactly the filtered, visible rows, in the list's order.

    Without the export permission (sales reps) only one's own opportunities are exported,
    whatever else one may see.
    """
    filterset = _filtered(request)
    queryset = filterset.qs
    if not request.user.has_perm(EXPORT_PERMISSION):
        queryset = queryset.filter(assigned_to=request.user)
    # The filterset read the active custom fields already: one column each.
    return export_response(
        queryset, filename=export_filename(), custom_fields=filterset.custom_fields
    )


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 or Excel CSV, with a header row. At most 5 MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                "The file is larger than 5 MB; split it and import the parts."
            )
        try:
            self.cleaned_data["text"] = decode_upload(upload.read())
        except ImportFileError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return upload


class ImportTokenForm(forms.Form):
    token = forms.CharField(widget=forms.HiddenInput)

    def clean_token(self):
        try:
            run_id = signing.loads(
                self.cleaned_data["token"], salt=IMPORT_SALT, max_age=IMPORT_TOKEN_MAX_AGE
            )
        except signing.SignatureExpired as exc:
            raise forms.ValidationError("The preview expired; upload the file again.") from exc
        except signing.BadSignature as exc:
            raise forms.ValidationError(
                "The preview could not be read; upload the file again."
            ) from exc
        try:
            self.cleaned_data["run_id"] = uuid.UUID(str(run_id))
        except ValueError as exc:
            raise forms.ValidationError(
                "The preview could not be read; upload the file again."
            ) from exc
        return self.cleaned_data["token"]


class ImportConfirmForm(ImportTokenForm):
    fingerprint = forms.CharField(widget=forms.HiddenInput)


# Columns a mapping form may name (col_0 … col_N): more would be a forged form.
MAX_MAPPED_COLUMNS = 500


class ImportMappingForm(ImportTokenForm):
    """The mapping step: a field per column (col_<index>), the mode, empty cells."""

    mode = forms.ChoiceField(choices=list(MODES.items()))
    keep_when_empty = forms.BooleanField(required=False)

    def options(self) -> ImportOptions:
        mapping = {}
        for name, value in self.data.items():
            index = name.removeprefix("col_")
            if name.startswith("col_") and index.isdigit() and int(index) < MAX_MAPPED_COLUMNS:
                mapping[str(int(index))] = str(value)[:120]
        return ImportOptions(
            mapping=mapping,
            mode=self.cleaned_data["mode"],
            keep_when_empty=self.cleaned_data["keep_when_empty"],
        )


def _render_preview(request, plan, run, *, notice: str = ""):
    # The file waits on the server (ImportRun); the forms carry only its signed id, a
    # few bytes whatever the file's size, and any worker can take it.
    token = signing.dumps(str(run.pk), salt=IMPORT_SALT)
    options = run_options(run)
    choices = field_choices(plan.custom_fields)
    return render(
        request,
        IMPORT,
        {
            "nav": "list",
            "plan": plan,
            "filename": run.filename,
            "notice": notice,
            "sample": plan.rows[:PREVIEW_ROWS],
            "token": token,
            "columns": [
                {"index": index, "header": header, "target": target}
                for index, (header, target) in enumerate(plan.columns)
            ],
            "field_choices": choices,
            "modes": list(MODES.items()),
            "options": options,
            "confirm": ImportConfirmForm(initial={"token": token, "fingerprint": plan.fingerprint}),
        },
    )


def _preview(request, text: str, filename: str, *, notice: str = "", options=None):
    try:
        plan, run = import_prepare(text=text, filename=filename, user=request.user, options=options)
    except ImportFileError as exc:
        form = ImportUploadForm()
        return render(request, IMPORT, {"nav": "list", "form": form, "file_error": str(exc)})
    return _render_preview(request, plan, run, notice=notice)


def _remap(request):
    form = ImportMappingForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(form.errors.get("token", ["Upload the file again."])))
        return redirect("opportunities:import")
    try:
        plan, run = import_remap(
            run_id=form.cleaned_data["run_id"], user=request.user, options=form.options()
        )
    except ImportRun.DoesNotExist:
        messages.error(request, "The preview could not be found; upload the file again.")
        return redirect("opportunities:import")
    except ImportFileError as exc:
        messages.error(request, str(exc))
        return redirect("opportunities:import")
    return _render_preview(request, plan, run)


def _imported(request, run) -> None:
    messages.success(
        request,
        f"Imported {run.filename}: {run.created} created, {run.updated} updated"
        + (f", {run.skipped} rows with errors skipped." if run.skipped else "."),
    )


@require_http_methods(["GET", "POST"])
@permission_required(IMPORT_PERMISSION, raise_exception=True)
def import_csv(request):
    """Upload → preview (every row checked, nothing written) → confirm (once per preview)."""
    if request.method == "GET":
        return render(request, IMPORT, {"nav": "list", "form": ImportUploadForm()})
    try:
        step = request.POST.get("step")
    except RequestDataTooBig:
        messages.error(request, "That import is too large for one step; split the file.")
        return redirect("opportunities:import")

    if step == "map":
        return _remap(request)
    if step == "confirm":
        confirm = ImportConfirmForm(request.POST)
        if not confirm.is_valid():
            messages.error(
                request, " ".join(confirm.errors.get("token", ["Upload the file again."]))
            )
            return redirect("opportunities:import")
        run_id = confirm.cleaned_data["run_id"]
        try:
            run = import_confirm(
                run_id=run_id, user=request.user, fingerprint=confirm.cleaned_data["fingerprint"]
            )
        except ImportAlreadyConfirmed:
            messages.info(request, "This import was already confirmed; it runs only once.")
            return redirect("opportunities:import_progress", run_id=run_id)
        except ImportRun.DoesNotExist:
            messages.error(request, "The preview could not be found; upload the file again.")
            return redirect("opportunities:import")
        except ImportFileError as exc:
            # Only a preview that parsed gets a token, but the rules may change in between.
            messages.error(request, str(exc))
            return redirect("opportunities:import")
        except ImportChanged:
            run = ImportRun.objects.get(pk=run_id)
            return _preview(
                request,
                run.text,
                run.filename,
                options=run_options(run),
                notice="The data changed since the preview; nothing was imported. "
                "Check the rows again.",
            )
        # A small file is done within the second; a big one goes on from its progress page.
        run = import_continue(run=run, user=request.user, seconds=IMPORT_STEP_SECONDS)
        if run.finished_at is not None:
            _imported(request, run)
            return redirect(reverse("opportunities:list"))
        return redirect("opportunities:import_progress", run_id=run.pk)

    form = ImportUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return render(request, IMPORT, {"nav": "list", "form": form}, status=400)
    return _preview(request, form.cleaned_data["text"], form.cleaned_data["file"].name)


@require_http_methods(["GET", "POST"])
@permission_required(IMPORT_PERMISSION, raise_exception=True)
def import_progress(request, run_id):
    """A confirmed import's progress; each POST writes the next chunks.

    With htmx the page posts by itself, about a second of writing per request, until the
    end; without JavaScript each "Continue" writes for up to 20 seconds.
    """
    # The file itself is read only when this process has not parsed it yet.
    runs = ImportRun.objects.defer("text")
    run = get_object_or_404(runs, pk=run_id, user=request.user, confirmed_at__isnull=False)
    if request.method == "POST" and run.finished_at is None:
        seconds = IMPORT_STEP_SECONDS if request.htmx else IMPORT_PAGE_STEP_SECONDS
        run = import_continue(run=run, user=request.user, seconds=seconds)
        if not request.htmx:
            if run.finished_at is None:
                return redirect("opportunities:import_progress", run_id=run.pk)
            _imported(request, run)
            return redirect(reverse("opportunities:list"))
    context = {"nav": "list", "run": run}
    if request.htmx:
        return render(request, IMPORT + "#progress", context)
    return render(request, IMPORT, context)
