from django.db import migrations


class Migration(migrations.Migration):
    """holdout_share also sizes random control groups: it is the control group's share, whatever its kind."""

    dependencies = [("campaigns", "0010_area_exports")]

    operations = [
        migrations.RenameField("campaign", "holdout_share", "control_share"),
    ]
