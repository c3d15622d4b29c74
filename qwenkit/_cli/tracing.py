"""``--trace``: install an OpenTelemetry SDK tracer provider that prints spans or sends them over OTLP."""

from __future__ import annotations

from qwenkit.errors import ConfigError

TRACE_MODES = ("console", "otlp")


def install_tracing(mode: str) -> None:
    """Install a tracer provider for this process (``console``: spans on stderr; ``otlp``: the OTLP/HTTP
    exporter, configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables).

    Raises:
        ConfigError: The SDK (or the OTLP exporter) is not installed.
    """
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        raise ConfigError("tracing needs the OpenTelemetry SDK: pip install 'qwenkit[trace]'") from None
    exporter: SpanExporter
    if mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise ConfigError("--trace otlp needs the OTLP exporter: pip install 'qwenkit[trace]'") from None
        exporter = OTLPSpanExporter()
    else:
        import sys

        exporter = ConsoleSpanExporter(out=sys.stderr)
    provider = TracerProvider(resource=Resource.create({"service.name": "qwenkit"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    import atexit

    atexit.register(provider.shutdown)  # flush the last spans when the command ends
