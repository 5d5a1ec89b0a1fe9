"""What is read beside the capture files: the capture agent's metadata (capture.json).

The capture files themselves are read by the core (core/src/read, ``pcapdns._core``)."""
