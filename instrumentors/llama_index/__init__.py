"""llama_index instrumentor (pending)."""
