"""The draw-a-digit demo: the model work (``demo``), its loopback-only HTTP server closed
to other sites (``server``) and its single HTML page."""
