"""I/O drivers for the trackwire cores: sockets, TLS, clocks and reconnect loops."""
