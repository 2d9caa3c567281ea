"""The one search engine under every family (``search``) and score curve -> windows (``proposals``)."""
