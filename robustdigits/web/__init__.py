"""The draw-a-digit demo: a loopback-only HTTP server (``demo``) and its single HTML page."""
