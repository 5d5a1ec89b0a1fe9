"""Stage 3: DNS payloads -> DNS messages."""
