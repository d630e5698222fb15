"""Canned messages: the book (categories, messages, placeholders, search and suggestions, in
memory) and the desk that keeps the book in the store.

Uses the store and the model.
"""
