from django.core.management.base import BaseCommand

from automation.demo import seed_demo_rules


class Command(BaseCommand):
    help = "Create the demo automation rules on the 'Sales' pipeline (run after seed_demo)."

    def handle(self, *args, **options):
        rules = seed_demo_rules()
        names = ", ".join(rule.name for rule in rules) or "none (run seed_demo first)"
        self.stdout.write(f"Automation rules: {names}")
