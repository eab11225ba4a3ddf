"""`utm bench`: synthetic captures and an engine-vs-tshark benchmark."""
