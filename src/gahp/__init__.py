"""Generic GAHP (Grid ASCII Helper Protocol) machinery.

The modules ``framing``, ``escaping``, ``commands`` and ``protocol`` form a sans-IO core:
they take bytes and return bytes/events and never touch a file descriptor or a clock.
``bootstrap`` and ``runtime`` are the I/O drivers (plain blocking I/O before trio is
imported, trio afterwards).
"""
