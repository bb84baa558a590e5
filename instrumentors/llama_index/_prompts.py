"""Prompt-version fingerprints on LlamaIndex LLM spans (``compare_prompts`` groups by them).

Why here and how: ``compare_prompts`` groups *generation* spans (our LLM spans) by
``instrumentors.prompt.template_hash`` or ``instrumentors.prompt.system_hash``. With
content capture off these hashes are the only way to tell prompt versions apart.

* The template is known where LlamaIndex formats it: ``LLM.predict``/``apredict``/
  ``stream``/``astream`` and ``structured_predict`` (and friends) dispatch an
  ``LLMPredictStartEvent`` / ``LLMStructuredPredictStartEvent`` carrying the
  ``BasePromptTemplate`` (query engines' synthesizers call ``predict`` with their
  ``text_qa_template``/``refine_template``/``summary_template``). The event arrives inside
  that call's dispatcher span, *before* the model method runs, so :class:`PromptTemplates`
  keeps the template under the dispatcher span id; untraced dispatcher calls below it
  (a structured-output program, ``predict_and_call``) inherit it; the LLM wrapper reads
  it for the active dispatcher span id; it is forgotten when that span exits.
* A chat call's actual system/developer messages give the system hash when no template
  says (chat engines, direct ``llm.chat``), computed as for raw OpenAI calls.

Only hashes are written (through ``_content.content_hash``), never the template text.
"""

from __future__ import annotations

from typing import Any, Optional

from llama_index.core.prompts.base import ChatPromptTemplate, PromptTemplate, SelectorPromptTemplate

from .. import _content
from .. import _semconv as sc
from .._spans import report_internal_error

#: most dispatcher spans holding an announced template at once (they are forgotten when
#: the span exits; beyond this the oldest is dropped, so a span that never exits cannot
#: grow the map).
MAX_PENDING = 1024

_SYSTEM_ROLES = ("system", "developer")


class PromptTemplates:
    """Dispatcher span id -> the prompt template announced in it (bounded)."""

    __slots__ = ("pending", "max_pending")

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.pending: dict = {}  # read directly by the handler: "any pending?" is one truth test
        self.max_pending = max_pending

    def announce(self, span_id: Optional[str], template: Any) -> None:
        if span_id is None or template is None:
            return
        pending = self.pending
        pending.pop(span_id, None)  # re-insert at the end: eviction order is age
        while len(pending) >= self.max_pending:
            try:
                del pending[next(iter(pending))]
            except (StopIteration, KeyError, RuntimeError):
                break
        pending[span_id] = template

    def inherit(self, span_id: str, parent_id: Optional[str]) -> None:
        """An untraced dispatcher call inside one that announced a template."""
        if parent_id is None:
            return
        template = self.pending.get(parent_id)
        if template is not None:
            self.announce(span_id, template)

    def forget(self, span_id: str) -> None:
        self.pending.pop(span_id, None)

    def get(self, span_id: Optional[str]) -> Any:
        return self.pending.get(span_id) if span_id is not None else None

    def clear(self) -> None:
        self.pending.clear()


def _role(message: Any) -> Optional[str]:
    role = getattr(message, "role", None)
    role = getattr(role, "value", role)
    return str(role) if role else None


def _text(message: Any) -> str:
    try:
        content = message.content
    except Exception:  # noqa: BLE001 - the content getter raises on exotic block mixes
        return ""
    return content if isinstance(content, str) else ""


def _select(template: SelectorPromptTemplate, llm: Any) -> Any:
    """The template a selector picks for ``llm`` (``SelectorPromptTemplate.select``
    without its side effect of rewriting the candidates' output parsers)."""
    for condition, prompt in template.conditionals or ():
        if condition(llm):
            return prompt
    return template.default_template


def template_parts(template: Any, llm: Any) -> Optional[list]:
    """``[(role or None, template text)]`` of the template ``llm`` is formatted with."""
    for _ in range(8):  # selectors of selectors: bounded
        if isinstance(template, SelectorPromptTemplate):
            template = _select(template, llm)
        else:
            break
    if isinstance(template, ChatPromptTemplate):
        return [(_role(m), _text(m)) for m in template.message_templates]
    if isinstance(template, PromptTemplate):
        return [(None, template.template)] if isinstance(template.template, str) else None
    get_template = getattr(template, "get_template", None)  # RichPromptTemplate, LangchainPromptTemplate...
    if callable(get_template):
        text = get_template(llm=llm)
        return [(None, text)] if isinstance(text, str) and text else None
    return None


def template_attributes(template: Any, llm: Any) -> dict:
    """Template hash (role-prefixed messages joined with "\\n" for chat templates, as the
    LangChain instrumentor does) and the hash of the template's system messages."""
    parts = template_parts(template, llm)
    if not parts:
        return {}
    text = "\n".join(f"{role}: {tpl}" if role else tpl for role, tpl in parts)
    attrs = {sc.PROMPT_TEMPLATE_HASH: _content.content_hash(text)}
    system = [tpl for role, tpl in parts if role in _SYSTEM_ROLES and tpl]
    if system:
        attrs[sc.SYSTEM_PROMPT_HASH] = _content.content_hash("\n".join(system))
    return attrs


def system_hash(messages: Any) -> Optional[str]:
    """Hash of the system/developer messages' texts joined with "\\n" (as for raw OpenAI
    chat calls), None without any."""
    texts = [t for t in (_text(m) for m in messages or () if _role(m) in _SYSTEM_ROLES) if t]
    if not texts:
        return None
    return _content.content_hash(texts[0] if len(texts) == 1 else "\n".join(texts))


def llm_prompt_attributes(templates: PromptTemplates, span_id: Optional[str], llm: Any,
                          messages: Optional[list]) -> dict:
    """The prompt fingerprints of one LLM call: the announced template's (if any), else
    the system hash of the chat messages. Never raises (a template we cannot read costs
    the fingerprint, not the span)."""
    try:
        attrs: dict = {}
        if templates.pending:
            template = templates.get(span_id)
            if template is not None:
                attrs = template_attributes(template, llm)
        if messages and sc.SYSTEM_PROMPT_HASH not in attrs:
            digest = system_hash(messages)
            if digest is not None:
                attrs[sc.SYSTEM_PROMPT_HASH] = digest
        return attrs
    except Exception as exc:  # noqa: BLE001
        report_internal_error("llama_index.prompt_hash", exc)
        return {}
