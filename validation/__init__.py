"""Model vs SPICE: bottom-up vs top-down pipelines, trace fitting, metrics and reports."""
