"""One module per ``tomodiff`` sub-command; see :mod:`tomodiff.cli`."""
