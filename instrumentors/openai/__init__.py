"""openai instrumentor (pending)."""
