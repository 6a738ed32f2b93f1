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
    purpose = forms.ChoiceField(label=_("Purpose"), choices=Campaign.Purpose.choices, initial=Campaign.Purpose.SALE,
                                widget=forms.RadioSelect, required=False)
    product = forms.ModelChoiceField(label=_("Product"), queryset=Product.objects.order_by("code"), required=False,
                                     help_text=_("What a sale campaign sells: its holders are left out of the target list. "
                                                 "Empty for a retention campaign"))
    offer = forms.CharField(label=_("Offer"), max_length=200, required=False,
                            help_text=_("What the contact offers, in words (a retention campaign's offer to stay)"))
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
    cost_per_contact = forms.DecimalField(label=_("Cost per contact (yuan)"), required=False, min_value=Decimal("0"),
                                          max_digits=8, decimal_places=2,
                                          help_text=_("Empty: the channel's default cost"))
    value_per_conversion = forms.DecimalField(label=_("Value per conversion (yuan)"), required=False, min_value=Decimal("0"),
                                              max_digits=10, decimal_places=2,
                                              help_text=_("What a conversion (a leaver kept) is worth; empty: months "
                                                          "(CAMPAIGN_VALUE_MONTHS) of the product's fee or of a kept "
                                                          "target's revenue"))
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

    def clean_purpose(self):
        return self.cleaned_data.get("purpose") or Campaign.Purpose.SALE


class PerformanceFilter(forms.Form):
    since = forms.DateField(label=_("Starting from"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("Starting until"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    purpose = forms.ChoiceField(label=_("Purpose"), required=False, choices=[("", _("All")), *Campaign.Purpose.choices])

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise forms.ValidationError(_("The period ends before it starts."))
        return data
