"""The museum catalogue: importing objects and their photos, and summarising them."""

from artwatch.catalogue.importer import ImportReport, ManifestError, import_catalogue
from artwatch.catalogue.stats import CatalogueStats, catalogue_stats

__all__ = [
    "CatalogueStats",
    "ImportReport",
    "ManifestError",
    "catalogue_stats",
    "import_catalogue",
]
