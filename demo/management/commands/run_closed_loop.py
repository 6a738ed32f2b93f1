from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from campaigns.services.campaigns import CampaignRefused
from demo.closed_loop import run_closed_loop


class Command(BaseCommand):
    help = ("Run a propensity-targeted campaign end to end on the simulated city: freeze it with a random "
            "control group, let each field team export and 'call' its share (answers from the simulator's "
            "response model), report the outcomes, and print the evaluation.")

    def add_arguments(self, parser):
        parser.add_argument("--city", type=Path, required=True, help="the simulated city's folder (its truth/ is read)")
        parser.add_argument("--manager", default="admin", help="the campaign manager's username")
        parser.add_argument("--field", nargs="+", default=["field_chancheng", "field_shunde"],
                            help="usernames of the field teams (their districts are the campaign's)")
        parser.add_argument("--product", default="5g_plan")
        parser.add_argument("--min-decile", type=int, default=9, help="target propensity deciles from this one up")
        parser.add_argument("--control-share", type=float, default=0.1)
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args, **options):
        users = get_user_model().objects
        try:
            manager = users.get(username=options["manager"])
            field_teams = [users.get(username=name) for name in options["field"]]
        except get_user_model().DoesNotExist:
            raise CommandError("unknown user: run `manage.py create_demo_accounts` first") from None
        if not (options["city"] / "truth" / "city.json").exists():
            raise CommandError(f"{options['city']} is not a simulated city (no truth/city.json)")
        try:
            campaign, result = run_closed_loop(
                city=options["city"], manager=manager, field_teams=field_teams, product_code=options["product"],
                min_decile=options["min_decile"], control_share=options["control_share"], seed=options["seed"])
        except (CampaignRefused, ValueError) as exc:
            raise CommandError(str(exc)) from None
        overall = result["overall"]
        self.stdout.write(f"campaign #{campaign.id} {campaign.name}: {campaign.counts['targets']:,} targets, "
                          f"{campaign.counts['control']:,} in the random group")
        for group in ("target", "control"):
            counts = overall[group]
            self.stdout.write(f"  {group:<8} contacted {counts['contacted']:>7,}  converted {counts['reported_converted']:>6,}  "
                              f"rate {overall[f'{group}_rate'] or 0:.2%}")
        if overall["lift"] is not None:
            self.stdout.write(f"  lift {overall['lift']:.2f} (95% CI {overall['lift_low']:.2f}-{overall['lift_high']:.2f}), "
                              f"p = {overall['p_value']:.3g}; report at /campaigns/{campaign.id}/")
