"""The shipped networks by name (``registry``); the build cache is ``archc.built``, kept at that name
because pickled models refer to it."""
