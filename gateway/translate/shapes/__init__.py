"""What each API shape looks like: usage objects, stream-event builders and the inbound writer
(`Outbound`), shared by every translator pair that speaks the shape."""
