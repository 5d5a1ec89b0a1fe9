"""Stage 4: DNS messages -> transactions and lookups."""
