"""One instrumentation session: what ``instrument()`` installs and ``uninstrument()`` removes."""

from __future__ import annotations

from typing import Any, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.instrumentation import DispatcherSpanMixin, get_dispatcher
from llama_index.core.tools.types import BaseTool
from opentelemetry import trace

try:
    from llama_index.core.agent.workflow import BaseWorkflowAgent
except ImportError:  # 0.12: no workflow agents
    BaseWorkflowAgent = None  # type: ignore[assignment,misc]

from ._agents import TAKE_STEP_METHODS, take_step_wrapper
from ._common import Telemetry
from ._handler import DispatcherLogic, InstrumentorsEventHandler, InstrumentorsSpanHandler
from ._models import EMBEDDING_METHODS, LLM_METHODS, embedding_wrapper, llm_wrapper
from ._patches import ClassPatcher
from ._scopes import CallbackScopes
from ._tools import TOOL_METHODS, ToolCalls, tool_wrapper


class Session:
    def __init__(self, tracer_provider: Optional[trace.TracerProvider], meter_provider: Any) -> None:
        self.tel = Telemetry(tracer_provider, meter_provider)
        self.logic = DispatcherLogic(self.tel)
        self.span_handler = InstrumentorsSpanHandler(self.logic)
        self.event_handler = InstrumentorsEventHandler(self.logic)
        self.patcher = ClassPatcher(DispatcherSpanMixin)
        self.patcher.add_target(BaseLLM, LLM_METHODS, lambda name: llm_wrapper(self.tel, name))
        self.patcher.add_target(BaseEmbedding, EMBEDDING_METHODS, lambda name: embedding_wrapper(self.tel, name))
        self.tool_calls = ToolCalls(self.tel, self.logic)
        self.patcher.add_target(BaseTool, TOOL_METHODS, lambda name: tool_wrapper(self.tool_calls, name))
        if BaseWorkflowAgent is not None:  # 0.13+: agents taking turns inside an AgentWorkflow
            self.patcher.add_target(BaseWorkflowAgent, TAKE_STEP_METHODS,
                                    lambda name: take_step_wrapper(self.tel.tracer, name))
        self.scopes = CallbackScopes(self.tel)
        self.dispatcher = get_dispatcher()  # the root: every other dispatcher propagates to it

    def install(self) -> None:
        self.patcher.install()
        self.scopes.install()
        self.dispatcher.add_span_handler(self.span_handler)
        self.dispatcher.add_event_handler(self.event_handler)

    def uninstall(self) -> None:
        d = self.dispatcher
        d.span_handlers = [h for h in d.span_handlers if h is not self.span_handler]
        d.event_handlers = [h for h in d.event_handlers if h is not self.event_handler]
        self.patcher.restore()
        self.scopes.restore()
        self.tel.close()
