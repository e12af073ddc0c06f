"""Shared data layer: one catalog of datasets, hash-checked cached downloads,
and one loader module per kind of data (images, photos, ...). Apps get their
data only from here."""
