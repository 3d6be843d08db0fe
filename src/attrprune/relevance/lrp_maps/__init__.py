"""LRP patch maps for the families lxt ships none for (see `attrprune.architectures`).

Each module exposes ``attnLRP`` and ``cp_LRP`` in lxt's format ({class or modeling module:
patch}), built only from lxt's own rules. Imported only by `attrprune.relevance.lrp`.
"""
