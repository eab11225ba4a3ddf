"""Device agent talking to the vendor cloud over outbound TLS. Not built yet."""
