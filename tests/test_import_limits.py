"""Import uploads: oversized bodies refused unread, big files preview and confirm."""

import io
import random
import string

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from opportunities.models import Opportunity
from tests import factories

pytestmark = pytest.mark.django_db

IMPORT_URL = "/opportunities/import/"


class Unreadable(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = read


def post_declaring(client, length: int, url: str = IMPORT_URL):
    return client.generic(
        "POST",
        url,
        b"x",
        content_type="multipart/form-data; boundary=BoUnDaRy",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": Unreadable()},
    )


def test_anonymous_upload_of_200_mb_is_refused_before_it_is_read(client):
    response = post_declaring(client, 200 * 1024 * 1024)
    assert response.status_code == 413
    assert "too large" in response.content.decode()


def test_anonymous_body_over_the_small_limit_is_refused_on_any_page(client):
    response = post_declaring(client, settings.ANONYMOUS_BODY_LIMIT + 1, url="/accounts/login/")
    assert response.status_code == 413


def test_importer_upload_over_the_limit_is_refused_before_it_is_read(client):
    client.force_login(factories.manager())
    response = post_declaring(client, settings.REQUEST_BODY_LIMITS["opportunities:import"] + 1)
    assert response.status_code == 413
    assert "Split the file" in response.content.decode()


def test_other_pages_keep_the_framework_limit_for_signed_in_users(client):
    client.force_login(factories.manager())
    response = post_declaring(
        client, settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1, url="/opportunities/"
    )
    assert response.status_code == 413


def big_file(size: int) -> bytes:
    """A valid CSV of about `size` bytes: a few rows with a long ignored column.

    Random letters, so that the file does not shrink when compressed.
    """
    rng = random.Random(11)
    rows = ["name,notes"]
    index = 0
    while sum(len(row) + 1 for row in rows) < size:
        rows.append(f"Deal {index}," + "".join(rng.choices(string.ascii_letters, k=100_000)))
        index += 1
    return ("\n".join(rows) + "\n").encode()


def test_a_file_of_4_48_mb_previews_and_confirms(client):
    factories.pipeline_with_stages(name="Sales")
    client.force_login(factories.manager())
    content = big_file(4_480_000)
    assert 4_480_000 <= len(content) < settings.IMPORT_MAX_FILE_BYTES
    upload = SimpleUploadedFile("big.csv", content, "text/csv")
    preview = client.post(IMPORT_URL, {"step": "preview", "file": upload})
    assert preview.status_code == 200
    rows = preview.context["plan"].creates
    form = preview.context["confirm"]
    response = client.post(
        IMPORT_URL,
        {
            "step": "confirm",
            "token": form["token"].value(),
            "fingerprint": form["fingerprint"].value(),
        },
    )
    assert response.status_code == 302
    assert Opportunity.objects.count() == rows
