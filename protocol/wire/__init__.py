"""The wire itself, with no I/O: frames, the codec, error codes, and records.

frames (the schema of every request and event, and the limits), codec (bytes <-> frames,
validated), errors (the one wire error type and every code and close code), records (engine
objects -> the wire's maps). Imports nothing from the server, the client or the command line,
and neither trio nor trio-websocket.
"""
