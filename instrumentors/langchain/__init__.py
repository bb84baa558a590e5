"""langchain instrumentor (pending)."""
