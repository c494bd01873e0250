"""artwatch: watch online auction houses for catalogued museum objects.

This package is the spine every stage shares: settings, the database, the image store,
the embedded services, the CLI and the demo data.
"""

__version__ = "0.1.0"
