from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("regions", views.RegionViewSet, basename="region")
router.register("products", views.ProductViewSet, basename="product")
router.register("subscribers", views.SubscriberViewSet, basename="subscriber")
router.register("ingest-batches", views.IngestBatchViewSet, basename="ingestbatch")
router.register("snapshot-runs", views.SnapshotRunViewSet, basename="snapshotrun")
router.register("snapshots", views.SnapshotViewSet, basename="snapshot")

urlpatterns = router.urls
