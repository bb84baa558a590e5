"""A recorded feedback as an Arize Phoenix span annotation.

``record_feedback`` always emits a ``feedback`` span inside the judged trace (every OTLP
backend gets it; Phoenix shows it as an EVALUATOR span in ``openinference`` mode). Phoenix
also has a native place for judgments, *annotations* (its REST ``POST /v1/span_annotations``),
which it shows on the span, in the trace list's annotation columns and in its filters
(``annotations['user'].score < 0.5``). The mapping:

====================================  =====================================================
``record_feedback(...)`` / record     Phoenix span annotation
====================================  =====================================================
the judged span: ``span_id``, else    ``span_id`` (the feedback span itself when the trace's
the trace's root (``target_span_id``) root was unknown: then the record has no target)
``key`` (default ``"user"``)          ``name``
``score``                             ``result.score``
``reason``                            ``result.explanation``
``step_blamed``, the feedback span    ``metadata`` (``step_blamed``, ``feedback_span_id``,
id and trace id                       ``trace_id``, ``source: "instrumentors"``)
(a person judged it)                  ``annotator_kind: "HUMAN"``
the feedback span id                  ``identifier``: sending the same record again updates
                                      the annotation instead of adding a second one
====================================  =====================================================
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any, Mapping, Optional

from ._feedback import FeedbackRecord


def phoenix_annotation(record: FeedbackRecord) -> dict:
    """One annotation in the shape Phoenix's ``POST /v1/span_annotations`` takes."""
    metadata = {"source": "instrumentors", "trace_id": record.trace_id, "feedback_span_id": record.span_id}
    if record.step_blamed is not None:
        metadata["step_blamed"] = record.step_blamed
    result: dict = {"score": record.score}
    if record.reason is not None:
        result["explanation"] = record.reason
    return {
        "span_id": record.target_span_id or record.span_id,
        "name": record.key,
        "annotator_kind": "HUMAN",
        "result": result,
        "metadata": metadata,
        "identifier": record.span_id,
    }


def send_feedback_to_phoenix(record: FeedbackRecord, endpoint: Optional[str] = None, *,
                             headers: Optional[Mapping[str, str]] = None, timeout: float = 10.0) -> str:
    """Post a feedback record to Phoenix as a span annotation; returns the annotation's id.

    ``endpoint``: Phoenix's base URL (``PHOENIX_COLLECTOR_ENDPOINT``, else
    ``http://localhost:6006``). ``headers``: e.g. ``{"authorization": "Bearer <api key>"}``
    (``PHOENIX_API_KEY`` is used when set). Call it where you call ``record_feedback``; the
    span annotated must have reached Phoenix already (Phoenix answers 404 otherwise), so
    flush the tracer provider first if the trace just ended. Raises on HTTP errors: this
    is an explicit call of yours, not instrumentation."""
    base = (endpoint or os.environ.get("PHOENIX_COLLECTOR_ENDPOINT") or "http://localhost:6006").rstrip("/")
    if base.endswith("/v1/traces"):
        base = base[: -len("/v1/traces")]
    sent_headers = {"content-type": "application/json"}
    api_key = os.environ.get("PHOENIX_API_KEY")
    if api_key:
        sent_headers["authorization"] = f"Bearer {api_key}"
    sent_headers.update(headers or {})
    body = json.dumps({"data": [phoenix_annotation(record)]}).encode()
    request = urllib.request.Request(base + "/v1/span_annotations?sync=true", data=body, headers=sent_headers,
                                     method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's endpoint
        answer: Any = json.loads(response.read() or b"{}")
    data = answer.get("data") if isinstance(answer, dict) else None
    return str(data[0].get("id")) if data else ""
