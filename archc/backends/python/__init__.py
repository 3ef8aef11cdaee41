"""The PyTorch backend: a spec's blocks as ``nn.Module`` classes, one factory per variant, and the helper
classes the generated code carries (``codegen`` is the entry)."""
