"""Reads of the retrieval app, by sub-domain: ``archives`` (here re-exported) and ``features``
(imported explicitly: it loads the numeric modules)."""

from .archives import archive_list, category_list, category_superclasses, feature_set_list

__all__ = ["archive_list", "category_list", "category_superclasses", "feature_set_list"]
