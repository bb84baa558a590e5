"""Timing helpers shared by every benchmark: figures are ratios against baselines
measured in the same run, never absolute targets asserted in tests."""

from __future__ import annotations

import gc
import statistics
import time
from typing import Callable

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class NullExporter(SpanExporter):
    """Drops spans: we measure instrumentation, not export."""

    def export(self, spans):
        return SpanExportResult.SUCCESS

    def shutdown(self):
        pass


def null_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(NullExporter()))
    return provider


def per_call_us(fn: Callable[[], object], calls: int = 2000, repeats: int = 5) -> float:
    """Median over ``repeats`` of the mean microseconds per call of ``fn``."""
    for _ in range(min(200, calls)):
        fn()
    samples = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def floor_attributes(n_attributes: int) -> dict:
    """The floor span's attributes: as many as the instrumented spans carry (integers)."""
    return {f"attr.{i}": i for i in range(n_attributes)}


def bare_span(provider: TracerProvider, n_attributes: int) -> Callable[[], None]:
    """One bare SDK span with ``n_attributes`` attributes, made current and ended: the
    floor any instrumentation pays (each benchmark times it with its own clock)."""
    tracer = provider.get_tracer("floor")
    attrs = floor_attributes(n_attributes)

    def one() -> None:
        with tracer.start_as_current_span("floor", attributes=attrs):
            pass

    return one


def floor_span_us(provider: TracerProvider, n_attributes: int, calls: int = 2000) -> float:
    """:func:`bare_span` in a tight loop, wall clock."""
    return per_call_us(bare_span(provider, n_attributes), calls)


def report(rows: list) -> None:
    """Print rows of (name, instrumented_us, baseline_us, floor_us) with overhead/floor."""
    print(f"{'case':32} {'baseline us':>12} {'instr. us':>10} {'overhead us':>12} {'floor us':>9} {'overhead/floor':>15}")
    for name, instrumented, baseline, floor in rows:
        overhead = instrumented - baseline
        print(f"{name:32} {baseline:12.1f} {instrumented:10.1f} {overhead:12.1f} {floor:9.1f} {overhead / floor:15.2f}")
