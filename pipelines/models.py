from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Pipeline(models.Model):
    name = models.CharField(max_length=100, unique=True)
    position = models.PositiveIntegerField(default=0, db_index=True)
    is_archived = models.BooleanField(
        default=False, help_text="Archived pipelines are hidden from the board but keep their data."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class Stage(models.Model):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.PROTECT, related_name="stages")
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0, db_index=True)
    probability = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(100)],
        help_text="Chance of winning, in percent; gives the column its weighted value.",
    )
    rotting_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="An open opportunity without a stage change for this many days counts as stale.",
    )
    show_in_funnel = models.BooleanField(
        default=True, help_text="Count this stage in the manager's funnel chart."
    )

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline", "name"], name="stage_name_unique_in_pipeline"
            ),
            models.CheckConstraint(
                condition=models.Q(probability__isnull=True) | models.Q(probability__lte=100),
                name="stage_probability_at_most_100",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} › {self.name}"
