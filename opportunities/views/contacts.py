"""Finding a contact for the record form: search as you type, then pick one.

Both read contacts through `contacts_visible_to`: a rep finds only the contacts of
opportunities they can see; any other id answers 404, like one that does not exist.
"""

from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET

from opportunities.forms_records import ContactForm
from opportunities.models import MAX_ID
from opportunities.selectors import contacts_visible_to
from opportunities.selectors_records import contacts_matching
from opportunities.views.records import DETAIL

CONTACT_NOT_VISIBLE = "That contact does not exist or is not on an opportunity assigned to you."


@require_GET
@permission_required("opportunities.view_contact", raise_exception=True)
def contact_search(request):
    """Search as you type in the record form: at most ten matching contacts."""
    query = request.GET.get("contact-search", request.GET.get("q", ""))
    context = {"contacts": contacts_matching(request.user, query), "query": query.strip()}
    return render(request, f"{DETAIL}#contact_results", context)


@require_GET
@permission_required("opportunities.view_contact", raise_exception=True)
def contact_pick(request):
    """The contact block filled with a picked contact, or blank for a new one."""
    contact = None
    if request.GET.get("id"):
        contact = contacts_visible_to(request.user).filter(pk=_contact_id(request)).first()
        if contact is None:
            raise Http404(CONTACT_NOT_VISIBLE)
    context = {"contact_form": ContactForm(instance=contact, user=request.user), "picked": True}
    return render(request, f"{DETAIL}#contact_fields", context)


def _contact_id(request) -> int:
    """The `id` parameter as a row id; anything else (abc, 1.5, 10**30) is no contact."""
    text = request.GET["id"].strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
        raise Http404(CONTACT_NOT_VISIBLE)
    return int(text)
