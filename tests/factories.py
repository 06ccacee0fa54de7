"""factory-boy factories. They keep the model's invariants: an opportunity's stage is
always in its pipeline, a lost opportunity always has a reason."""

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from opportunities import ranking
from opportunities.models import (
    Communication,
    CommunicationKind,
    Contact,
    LostReason,
    Note,
    Opportunity,
    Status,
    Task,
)
from pipelines.models import Pipeline, Stage

DEFAULT_PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def groups(self, create, names, **kwargs):
        if create and names:
            self.groups.add(*Group.objects.filter(name__in=names))
        if create:
            self.save()


def rep(**kwargs):
    """A sales rep who sees only the opportunities assigned to them."""
    return UserFactory(groups=["Sales rep"], **kwargs)


def rep_with_view_all(**kwargs):
    user = rep(**kwargs)
    user.user_permissions.add(Permission.objects.get(codename="view_all_opportunities"))
    return user


def manager(**kwargs):
    return UserFactory(groups=["Sales manager"], **kwargs)


def admin(**kwargs):
    return UserFactory(is_staff=True, is_superuser=True, **kwargs)


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline

    name = factory.Sequence(lambda n: f"Pipeline {n}")
    position = factory.Sequence(lambda n: n)


class StageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Stage

    pipeline = factory.SubFactory(PipelineFactory)
    name = factory.Sequence(lambda n: f"Stage {n}")
    position = factory.Sequence(lambda n: n)


def pipeline_with_stages(names=("Prospecting", "Qualification", "Proposal", "Negotiation"), **kw):
    pipeline = PipelineFactory(**kw)
    stages = [
        StageFactory(pipeline=pipeline, name=name, position=index)
        for index, name in enumerate(names)
    ]
    return pipeline, stages


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"contact{n}@example.com")
    phone = factory.Sequence(lambda n: f"+1 555 01{n % 100:02d}")
    company = factory.Faker("company")


class LostReasonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LostReason
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Reason {n}")


_rank_counter = iter(range(1, 10**9))


class OpportunityFactory(factory.django.DjangoModelFactory):
    """Creates rows directly (fast, for fixtures); services are tested on their own."""

    class Meta:
        model = Opportunity

    name = factory.Sequence(lambda n: f"Deal {n}")
    stage = factory.SubFactory(StageFactory)
    pipeline = factory.SelfAttribute("stage.pipeline")
    status = Status.OPEN
    value = factory.Sequence(lambda n: (n % 50) * 100 + 500)
    source = "Website"
    contact = factory.SubFactory(ContactFactory)
    assigned_to = None
    # Increasing keys: cards appear in creation order within a column.
    rank = factory.LazyFunction(lambda: ranking.key_for_index(next(_rank_counter)))
    lost_reason = factory.Maybe(
        factory.LazyAttribute(lambda o: o.status == Status.LOST),
        yes_declaration=factory.SubFactory(LostReasonFactory, name="Price"),
        no_declaration=None,
    )


class NoteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Note

    opportunity = factory.SubFactory(OpportunityFactory)
    author = factory.SubFactory(UserFactory)
    body = factory.Faker("sentence")


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    opportunity = factory.SubFactory(OpportunityFactory)
    title = factory.Faker("sentence", nb_words=4)
    assigned_to = factory.SelfAttribute("opportunity.assigned_to")


class CommunicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Communication

    opportunity = factory.SubFactory(OpportunityFactory)
    contact = factory.SelfAttribute("opportunity.contact")
    kind = CommunicationKind.CALL
    summary = factory.Faker("sentence")


# Data migrations that grant the roles more permissions, each with a grant(apps, editor).
LATER_GRANTS = [
    "opportunities.migrations.0008_managers_delete",
    "integrations.migrations.0002_manager_manages_webhooks",
    "automation.migrations.0002_manager_permissions",
    "automation.migrations.0003_manager_adds_rules",
]


def ensure_roles():
    """(Re)create the role groups as the migrations leave them (0003, then later grants).

    Transactional tests (live_server) flush every table afterwards, and a data
    migration's rows do not come back with the flush; browser tests call this first.
    """
    import importlib

    from django.apps import apps

    roles = importlib.import_module("opportunities.migrations.0003_roles").ROLES
    for name, codes in roles.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    for module in LATER_GRANTS:
        importlib.import_module(module).grant(apps, None)
