from django.urls import path
from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("regions", views.RegionViewSet, basename="region")
router.register("products", views.ProductViewSet, basename="product")
router.register("subscribers", views.SubscriberViewSet, basename="subscriber")
router.register("ingest-batches", views.IngestBatchViewSet, basename="ingestbatch")
router.register("snapshot-runs", views.SnapshotRunViewSet, basename="snapshotrun")
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")
router.register("tags", views.TagViewSet, basename="tag")

urlpatterns = [
    path("features/", views.FeatureCatalogueView.as_view(), name="feature-catalogue"),
    path("audiences/preview", views.AudiencePreviewView.as_view(), name="audience-preview"),
    path("audiences/profile", views.AudienceProfileView.as_view(), name="audience-profile"),
    path("terminals/mix/", views.TerminalMixView.as_view(), name="terminal-mix"),
    path("terminals/switching/", views.HandsetSwitchingView.as_view(), name="terminal-switching"),
    path("terminals/change-cycle/", views.ChangeCycleView.as_view(), name="terminal-change-cycle"),
    *router.urls,
]
