"""The causal-link registry: which produced content flowed into which later step.

Instrumentors call exactly two functions:

* :func:`produce` after a step produced content (retrieved documents, an LLM completion,
  tool-call arguments, a tool result): its fingerprints are registered with the span.
* :func:`consume` *before* starting a step that takes content (prompts, messages,
  retriever queries, tool arguments): it returns the span links to set at start and
  summary attributes.

Both are no-ops (and cheap) when ``causal_links`` is off. The registry holds hashes only.
"""

from ._api import Consumption, Produced, consume, produce

__all__ = ["Consumption", "Produced", "consume", "produce"]
