"""What results look like on disk: tables (.md/.csv/.json with the machine that made them),
plots (loss curves, sweeps, galleries) and the one-page HTML report (``page``)."""
