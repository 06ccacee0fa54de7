"""Refuse query strings holding a NUL character, before any view puts one in SQL.

PostgreSQL cannot store or compare text containing NUL (psycopg raises DataError: a
500), and no search, filter or id ever needs one. Forms already refuse NUL in POSTed
fields (Django's ProhibitNullCharactersValidator); GET parameters read directly by views
(searches, pickers, filters) are caught here, once, with a message.
"""

from django.http import HttpResponse

MESSAGE = "The address contains a NUL character; remove it and try again."


class NulQueryGuardMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if any("\x00" in value for values in request.GET.lists() for value in values[1]) or any(
            "\x00" in key for key in request.GET
        ):
            return HttpResponse(MESSAGE, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
