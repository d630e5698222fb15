"""The server: the gateway that binds WebSocket connections (and plain HTTP) to engine handles.

gateway (accepts connections on one port), transport (the sans-I/O WebSocket protocol over a trio
stream), http (plain pages, health), connection (hello, requests, replies, events, heartbeat),
roles/ (one module per role: visitor, agent, supervisor, admin; and the role table), registry
(what spans connections), auth (tokens), settings (limits, timings, the TOML file), daemon (the
long-running process), metrics (Prometheus). Imports the wire and the engine; never the command
line.
"""
