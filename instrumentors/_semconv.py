"""Every attribute name and well-known value the suite emits.

OpenTelemetry GenAI semantic conventions (``gen_ai.*``, status Development) where they
exist. Our own names live under ``instrumentors.``, with two deliberate exceptions that
are user-facing filter keys named by the seed article and by Tempo/TraceQL users:
``retrieval.*`` (summary of one retrieval: count, top/lowest score) and ``feedback.*``
(the feedback span). Nothing else may invent an attribute name: import it from here.
"""

from __future__ import annotations

# --- gen_ai: common -------------------------------------------------------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_SYSTEM = "gen_ai.system"  # deprecated alias some backends still key on
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
GEN_AI_DATA_SOURCE_ID = "gen_ai.data_source.id"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_OUTPUT_TYPE = "gen_ai.output.type"

# --- gen_ai: request ------------------------------------------------------------------
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_TOP_K = "gen_ai.request.top_k"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_REQUEST_SEED = "gen_ai.request.seed"
GEN_AI_REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
GEN_AI_REQUEST_FREQUENCY_PENALTY = "gen_ai.request.frequency_penalty"
GEN_AI_REQUEST_PRESENCE_PENALTY = "gen_ai.request.presence_penalty"
GEN_AI_REQUEST_CHOICE_COUNT = "gen_ai.request.choice.count"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_REQUEST_ENCODING_FORMATS = "gen_ai.request.encoding_formats"
# OpenAI-specific (the convention moved them from gen_ai.openai.* to openai.*)
OPENAI_REQUEST_SERVICE_TIER = "openai.request.service_tier"  # only when not "auto"
OPENAI_API_TYPE = "openai.api.type"  # chat_completions | responses

# --- gen_ai: response -----------------------------------------------------------------
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
OPENAI_RESPONSE_SERVICE_TIER = "openai.response.service_tier"
OPENAI_RESPONSE_SYSTEM_FINGERPRINT = "openai.response.system_fingerprint"
GEN_AI_EMBEDDINGS_DIMENSION_COUNT = "gen_ai.embeddings.dimension.count"

# --- gen_ai: usage --------------------------------------------------------------------
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"

# --- gen_ai: content (only with content capture on) ----------------------------------
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"

# --- gen_ai: tools --------------------------------------------------------------------
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
GEN_AI_TOOL_TYPE = "gen_ai.tool.type"
GEN_AI_TOOL_DESCRIPTION = "gen_ai.tool.description"
GEN_AI_TOOL_CALL_ID = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"  # content
GEN_AI_TOOL_CALL_RESULT = "gen_ai.tool.call.result"  # content

# --- gen_ai: retrieval ----------------------------------------------------------------
GEN_AI_RETRIEVAL_QUERY_TEXT = "gen_ai.retrieval.query.text"  # content
GEN_AI_RETRIEVAL_DOCUMENTS = "gen_ai.retrieval.documents"  # JSON list: id, score, metadata, (content)

# --- gen_ai: attribution (proposed convention, used on causal links) ------------------
GEN_AI_ATTRIBUTION_LINK_TYPE = "gen_ai.attribution.link_type"

# --- general OTel ---------------------------------------------------------------------
SESSION_ID = "session.id"  # the app's session (OTel baggage or OpenInference's using_session)
USER_ID = "user.id"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"

# --- well-known values ----------------------------------------------------------------
# gen_ai.response.finish_reasons for "the model asked for tools", on chat and Responses
# spans alike (the provider's own value, as upstream instrumentations report it); the
# output-messages JSON uses the schema's FinishReason ``tool_call`` instead.
FINISH_TOOL_CALLS = "tool_calls"
OPENAI_API_CHAT_COMPLETIONS = "chat_completions"
OPENAI_API_RESPONSES = "responses"
OP_CHAT = "chat"
OP_TEXT_COMPLETION = "text_completion"
OP_GENERATE_CONTENT = "generate_content"
OP_EMBEDDINGS = "embeddings"
OP_RETRIEVAL = "retrieval"
OP_EXECUTE_TOOL = "execute_tool"
OP_INVOKE_AGENT = "invoke_agent"
OP_INVOKE_WORKFLOW = "invoke_workflow"
# Not a well-known value (the convention allows others when none applies): OpenAI moderations
OP_MODERATION = "moderation"

LINK_INFORMED_BY = "INFORMED_BY"  # retrieved context used by a step
LINK_CAUSED_BY_GENERATION = "CAUSED_BY_GENERATION"  # an LLM output used downstream
LINK_CAUSED_BY_TOOL = "CAUSED_BY_TOOL"  # a tool result used downstream (ours; no convention yet)
LINK_CAUSED_BY_STEP = "CAUSED_BY_STEP"  # a user step's output used downstream (ours)
# not content: a graph run resumed after an interrupt continues the interrupted run, in another trace (ours)
LINK_RESUMED_FROM = "RESUMED_FROM"

# --- ours: span classification --------------------------------------------------------
PREFIX = "instrumentors."
SPAN_KIND = "instrumentors.span.kind"
KIND_LLM = "llm"
KIND_EMBEDDING = "embedding"
KIND_RETRIEVER = "retriever"
KIND_RERANKER = "reranker"
KIND_TOOL = "tool"
KIND_WORKFLOW = "workflow"  # chains, runnables, query engines, synthesizers
KIND_PROMPT = "prompt"
KIND_PARSER = "parser"
KIND_AGENT = "agent"
KIND_STEP = "step"  # a user step made with instrumentors.step()
KIND_FEEDBACK = "feedback"
KIND_GUARDRAIL = "guardrail"  # a check on content (OpenAI moderations)

LIBRARY = "instrumentors.library"  # openai | langchain | llama_index | user
COMPONENT = "instrumentors.component"  # the class or runnable name
STEP_NAME = "instrumentors.step.name"
INPUT_VALUE = "instrumentors.input.value"  # content, bounded
OUTPUT_VALUE = "instrumentors.output.value"  # content, bounded
STEP_STATUS = "instrumentors.step.status"  # e.g. a validator's "pass"/"fail"
TRUNCATED = "instrumentors.truncated"  # names of attributes that were cut to the limit

# Usage that a nested client span already reports under gen_ai.usage.*: the framework
# span keeps its numbers here so a sum over gen_ai.usage.* never double counts.
USAGE_REPORTED_BY_CHILD = "instrumentors.usage.reported_by_child"
USAGE_INPUT_TOKENS = "instrumentors.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "instrumentors.usage.output_tokens"

# Streaming
STREAM_CHUNK_COUNT = "instrumentors.stream.chunks"
STREAM_ENDED_BY = "instrumentors.stream.ended_by"  # exhausted | closed | abandoned | error

# Tool calls an LLM response asked for: JSON [{"id","name","type"}], never the arguments
RESPONSE_TOOL_CALLS = "instrumentors.response.tool_calls"

# Tool results: true when a tool returned nothing (empty or whitespace), capture on or off
TOOL_RESULT_EMPTY = "instrumentors.tool.result_empty"

# Moderation (category names and flags only, never the checked text)
MODERATION_FLAGGED = "instrumentors.moderation.flagged"  # any input flagged
MODERATION_FLAGGED_CATEGORIES = "instrumentors.moderation.flagged_categories"  # sorted union
MODERATION_RESULT_COUNT = "instrumentors.moderation.result_count"  # inputs checked

# Rerank
RERANK_INPUT_DOCUMENTS = "instrumentors.rerank.input_documents"  # JSON like retrieval documents
RERANK_OUTPUT_DOCUMENTS = "instrumentors.rerank.output_documents"

# Prompt templates (compare_prompts groups by these)
PROMPT_TEMPLATE_HASH = "instrumentors.prompt.template_hash"
PROMPT_TEMPLATE = "instrumentors.prompt.template"  # content
SYSTEM_PROMPT_HASH = "instrumentors.prompt.system_hash"

# --- ours: graphs (LangGraph) -----------------------------------------------------------
KIND_NODE = "node"  # instrumentors.span.kind of one node execution of a graph
GRAPH_NAME = "instrumentors.graph.name"  # the graph's name (graph spans)
GRAPH_NODE = "instrumentors.graph.node"  # the node that ran (node spans), e.g. "agent", "tools"
GRAPH_STEP = "instrumentors.graph.step"  # the superstep the node ran in (node spans)
GRAPH_TRIGGERS = "instrumentors.graph.triggers"  # channels that triggered the node, e.g. "branch:to:agent"
GRAPH_STEPS = "instrumentors.graph.steps"  # graph spans: the last superstep when the run ended
GRAPH_STATUS = "instrumentors.graph.status"  # graph spans: done | interrupt_before | interrupt_after | out_of_steps | ...
GRAPH_RECURSION_LIMIT = "instrumentors.graph.recursion_limit"  # graph spans: the run's recursion_limit
GRAPH_INTERRUPTED = "instrumentors.graph.interrupted"  # the run stopped at an interrupt (not an error)
GRAPH_RESUMED = "instrumentors.graph.resumed"  # graph spans: the run resumed an interrupted thread
SOURCE_INTERRUPT = "interrupt"  # instrumentors.link.source_kind of a RESUMED_FROM link

# --- ours: causal links ---------------------------------------------------------------
CAUSAL_SOURCE_COUNT = "instrumentors.causal.source_count"
CAUSAL_SOURCE_IDS = "instrumentors.causal.source_ids"
CAUSAL_UNUSED_IDS = "instrumentors.causal.unused_document_ids"  # retrieved by a linked retrieval, absent here
CAUSAL_PRODUCED_DIGESTS = "instrumentors.causal.produced"  # compact fingerprint digests (no text)
CAUSAL_CONSUMED_DIGESTS = "instrumentors.causal.consumed"
# The span's links listed as attributes, for backends that drop OTLP span links (Phoenix):
# written only with INSTRUMENTORS_SEMCONV=openinference|both, parallel arrays in link order.
CAUSAL_LINKED_SPAN_IDS = "instrumentors.causal.linked_span_ids"  # 16 hex digits each
CAUSAL_LINK_TYPES = "instrumentors.causal.link_types"  # gen_ai.attribution.link_type of each
# on each link
LINK_DOCUMENT_ID = "instrumentors.link.document_id"
LINK_RANK = "instrumentors.link.rank"
LINK_SCORE = "instrumentors.link.score"
LINK_COVERAGE = "instrumentors.link.coverage"
LINK_SOURCE_KIND = "instrumentors.link.source_kind"  # document | generation | tool_call | tool_result | step
#                                                     | handoff | interrupt (RESUMED_FROM: the interrupted graph run)

# --- retrieval summary (user-facing filter keys, seed names) --------------------------
RETRIEVAL_DOCUMENT_COUNT = "retrieval.document_count"
RETRIEVAL_TOP_SCORE = "retrieval.top_score"
RETRIEVAL_LOWEST_SCORE = "retrieval.lowest_score"
RETRIEVAL_SCORE_ORDER = "retrieval.score_order"  # higher_is_better | lower_is_better

# --- feedback span --------------------------------------------------------------------
FEEDBACK_SCORE = "feedback.score"
FEEDBACK_KEY = "feedback.key"
FEEDBACK_REASON = "feedback.reason"
FEEDBACK_STEP_BLAMED = "feedback.step_blamed"
FEEDBACK_TARGET_SPAN_ID = "feedback.target_span_id"

# --- metrics --------------------------------------------------------------------------
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"
