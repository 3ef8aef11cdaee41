"""Diagrams of a graph: Graphviz pictures (``dot``, ``render``) and the interactive page (``page``);
``draw`` is the entry."""
