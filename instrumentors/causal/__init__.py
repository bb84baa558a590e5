"""The causal-link registry: which produced content flowed into which later step.

Instrumentors call exactly two functions:

* :func:`produce` after a step produced content (retrieved documents, an LLM completion,
  tool-call arguments, a tool result): its fingerprints are registered with the span.
* :func:`consume` *before* starting a step that takes content (prompts, messages,
  retriever queries, tool arguments): it returns the span links to set at start and
  summary attributes.

Both are no-ops (and cheap) when ``causal_links`` is off. The registry holds hashes only.

Modules: :mod:`.fingerprint` (normalisation, shingles, keys), :mod:`.registry` (the
scoped, bounded index), :mod:`.linking` (which hits become links), :mod:`.digests`
(digests on spans and :func:`rebuild_links` for backends), :mod:`.steps` (user steps).
"""

from ._api import Consumption, Produced, consume, produce
from .digests import RebuiltLink, SpanDigests, rebuild_links
from .registry import REGISTRY
from .steps import step

__all__ = [
    "Consumption",
    "Produced",
    "REGISTRY",
    "RebuiltLink",
    "SpanDigests",
    "consume",
    "produce",
    "rebuild_links",
    "step",
]
