"""Stage 6: render an Analysis (JSON document, terminal summary)."""
