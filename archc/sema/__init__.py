"""Elaboration: expressions evaluated within a budget, scopes and values, a network elaborated into its
validated graph of ops with every shape (``graph``), variants and init rules."""
