from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.utils.translation import gettext_lazy as _
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from campaigns import views as campaign_views
from campaigns.api import (
    CampaignPerformanceView,
    CampaignViewSet,
    ChurnModelView,
    HexTargetsView,
    MicroAreaTargetsView,
    ProductAssociationView,
    SavedAudienceViewSet,
)
from microarea import views as microarea_views
from microarea.api import HexStatsView, HexView, MicroAreaListView, MicroAreaStatsView, SubscriberLocationsView
from tagging import views as tagging_views
from tagging.api.views import ObtainExpiringToken

from . import views

admin.site.site_header = _("Precision marketing")
admin.site.site_title = _("Precision marketing admin")

campaign_router = DefaultRouter(trailing_slash=True)
campaign_router.include_root_view = False
campaign_router.register("campaigns", CampaignViewSet, basename="campaign")
campaign_router.register("saved-audiences", SavedAudienceViewSet, basename="saved-audience")

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the header's language switch
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),  # the pages' scripts' labels
    path("audiences/", tagging_views.audiences, name="audiences"),
    path("tags/<str:code>/", tagging_views.tag_page, name="tag-page"),
    path("terminals/", tagging_views.terminals, name="terminals"),
    path("map/", microarea_views.area_map, name="map"),
    path("campaigns/", campaign_views.campaign_list, name="campaigns"),
    path("campaigns/new/", campaign_views.campaign_new, name="campaign-new"),
    path("campaigns/performance/", campaign_views.campaign_performance_page, name="campaign-performance"),
    path("campaigns/association/", campaign_views.association_page, name="product-association"),
    path("campaigns/<int:pk>/", campaign_views.campaign_report, name="campaign-report"),
    re_path(r"^campaigns/(?P<pk>[0-9]+)/(?P<step>freeze|start|close)/$", campaign_views.campaign_step, name="campaign-step"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/microareas/", MicroAreaListView.as_view(), name="microarea-list"),
    path("api/v1/microareas/<int:pk>/stats/", MicroAreaStatsView.as_view(), name="microarea-stats"),
    path("api/v1/hexes/", HexView.as_view(), name="hexes"),
    path("api/v1/microareas/<int:pk>/targets/", MicroAreaTargetsView.as_view(), name="microarea-targets"),
    path("api/v1/hexes/<str:cell>/stats/", HexStatsView.as_view(), name="hex-stats"),
    path("api/v1/hexes/<str:cell>/targets/", HexTargetsView.as_view(), name="hex-targets"),
    path("api/v1/subscribers/<int:pk>/locations/", SubscriberLocationsView.as_view(), name="subscriber-locations"),
    path("api/v1/product-association/", ProductAssociationView.as_view(), name="product-association"),
    path("api/v1/churn-model/", ChurnModelView.as_view(), name="churn-model"),
    path("api/v1/campaign-performance/", CampaignPerformanceView.as_view(), name="campaign-performance-api"),
    path("api/v1/", include(campaign_router.urls)),
    path("api/v1/", include("tagging.api.urls")),
    path("api/v1/auth/token/", ObtainExpiringToken.as_view(), name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
