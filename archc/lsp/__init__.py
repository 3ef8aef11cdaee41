"""The language server (``archc lsp``): the compiler's knowledge of a spec, answered to an editor."""
