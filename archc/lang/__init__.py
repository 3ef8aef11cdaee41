"""The language front end: spec files are read (``files``), checked as text (``limits``), parsed (``syntax``,
``parser``) into the typed AST (``nodes``) and loaded with the files they use (``loader``)."""
