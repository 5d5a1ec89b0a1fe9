"""Stage 2: frames -> DNS payloads (link, IP, fragments, UDP, TCP reassembly)."""
