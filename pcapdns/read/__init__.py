"""Stage 1: capture files -> records (time, link type, interface, bytes)."""
