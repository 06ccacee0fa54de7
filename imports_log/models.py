"""One CSV import from upload to its last written row.

The preview stores the file here, and its id is the token the confirm form carries: the
confirm posts a few bytes whatever the size of the file, any worker can take it, and a
token is spent by the first confirm that claims it (`confirmed_at`), so confirming twice
imports once. The import then runs in chunks, each in its own transaction; `rows_done`
advances in the same transaction as the chunk's writes, so a chunk is written exactly once
even when two requests continue the same import.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone


class ImportRunQuerySet(models.QuerySet):
    def claim(self, pk, user) -> bool:
        """Spend a preview's token: True for exactly one caller, however many race."""
        unspent = self.filter(pk=pk, user=user, confirmed_at__isnull=True)
        return bool(unspent.update(confirmed_at=timezone.now()))

    def close(self, pk, outcome: str) -> None:
        """End a run that stopped before its rows were written."""
        self.filter(pk=pk).update(finished_at=timezone.now(), outcome=outcome)

    def planned(self, pk, *, skip_lines: list[int], rows_total: int) -> None:
        """What the confirmed import will do: the refused lines and the number of rows."""
        self.filter(pk=pk).update(skip_lines=skip_lines, rows_total=rows_total)

    def advance(self, pk, *, start: int, end: int, counts: dict, finished: bool) -> bool:
        """Record a written chunk, only if the progress is still `start` (else False)."""
        changes = {name: F(name) + count for name, count in counts.items()}
        return bool(
            self.filter(pk=pk, rows_done=start).update(
                rows_done=end, finished_at=timezone.now() if finished else None, **changes
            )
        )


class ImportRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    filename = models.CharField(max_length=255, blank=True)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The preview's refused lines: skipped when the import runs, as the preview said.
    skip_lines = models.JSONField(default=list, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # The mapping step's choices (column -> field, create/update, empty cells), set before
    # the confirm; every chunk reads the file with them (opportunities.services.imports).
    options = models.JSONField(default=dict, blank=True)
    # Set when the import stopped before its end (the data changed since the preview).
    outcome = models.CharField(max_length=200, blank=True)

    objects = ImportRunQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["created_at"], name="import_run_created")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.rows_done}/{self.rows_total})"

    @property
    def percent(self) -> int:
        return 100 if not self.rows_total else min(100, self.rows_done * 100 // self.rows_total)
