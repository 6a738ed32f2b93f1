"""The campaign manager's form for a new draft campaign: every choice limited to what the user may use."""

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tagging.models import Product, Region
from tagging.templatetags.formatting import named

from .models import Campaign, SavedAudience


class CampaignForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    product = forms.ModelChoiceField(label=_("Product"), queryset=Product.objects.order_by("code"),
                                     help_text=_("What the campaign sells: its holders are left out of the target list"))
    saved_audience = forms.ModelChoiceField(label=_("Saved audience"), queryset=SavedAudience.objects.none(),
                                            required=False, help_text=_("Its expression is used when the box below is empty"))
    audience = forms.CharField(label=_("Audience"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                               help_text=_('Tags with and, or, not; propensity_5g_plan >= 8; area("..."); holds("...")'))
    channel = forms.ChoiceField(label=_("Channel"), choices=Campaign.Channel.choices)
    start_date = forms.DateField(label=_("Start"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end_date = forms.DateField(label=_("End"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    control_kind = forms.ChoiceField(label=_("Control group"), choices=Campaign.ControlKind.choices,
                                     initial=Campaign.ControlKind.HOLDOUT, widget=forms.RadioSelect)
    control_share = forms.DecimalField(label=_("Control share"), min_value=Decimal("0.01"), max_value=Decimal("0.5"),
                                       decimal_places=3, initial=Decimal("0.1"),
                                       help_text=_("Size of the control group as a share of the eligible audience (0.01-0.5)"))
    regions = forms.ModelMultipleChoiceField(label=_("Districts"), queryset=Region.objects.none(),
                                             widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Products and districts by the name in the page's language.
        self.fields["product"].label_from_instance = named
        self.fields["regions"].label_from_instance = named
        districts = Region.objects.visible_to(user).districts().order_by("code")
        self.fields["regions"].queryset = districts
        self.fields["regions"].initial = list(districts)
        self.fields["saved_audience"].queryset = SavedAudience.objects.visible_to(user).order_by("name")
        today = timezone.localdate()
        self.fields["start_date"].initial = today + timedelta(days=1)
        self.fields["end_date"].initial = today + timedelta(days=14)
