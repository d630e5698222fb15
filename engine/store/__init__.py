"""Storage: the SQLite machinery (one writer thread fed from trio), the store of tickets, agents,
departments, statuses and tokens, and the journal of live chats that survives a restart.

Uses the model only.
"""
