"""The documents: their links, and what they say of the code."""
