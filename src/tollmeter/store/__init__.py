"""The store: events, limits, spend and budget leases (SQLite embedded; SQLite or PostgreSQL
behind the ingest server). SQLAlchemy is imported only when a store is opened."""
