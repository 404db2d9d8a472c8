"""Cells: one (model, attack, settings) unit of work keyed by the hash of its settings, its
per-sample results stored atomically (``cells``), and the runner, local or on Ray (``runner``)."""
