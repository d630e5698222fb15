"""Storage: the Store contract and its two implementations, SQLite and PostgreSQL, which share one
group-commit writer thread fed from trio (``writer``) and their queries (``queries``): tickets,
agents, departments, statuses, tokens, canned messages, the audit log, the webhook outbox, and
the journal of live chats that survives a restart.

Uses the model only.
"""
