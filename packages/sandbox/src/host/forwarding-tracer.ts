import {
  INVALID_SPAN_CONTEXT,
  context as otelContext,
  createContextKey,
  trace,
  type AttributeValue,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type SpanOptions,
  type SpanStatus,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import type { WireSpan } from './protocol.js';

/** The call a span belongs to, set by the host on the context it hands to the sandbox. */
export const CALL_ID = createContextKey('toolplane.sandbox.callId');

/**
 * Spans made in a sandbox host (`ctx.fetch`) go to the parent, which records them under the call's
 * `sandbox.run` span with the times they had here. The host loads no SDK and exports nothing, so
 * it needs neither the collector's address nor any other part of the worker's environment.
 */
export class ForwardingTracerProvider implements TracerProvider {
  private readonly tracer: Tracer;
  constructor(forward: (callId: number, span: WireSpan) => void) {
    this.tracer = new ForwardingTracer(forward);
  }
  getTracer(): Tracer {
    return this.tracer;
  }
}

class ForwardingTracer implements Tracer {
  constructor(private readonly forward: (callId: number, span: WireSpan) => void) {}

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = otelContext.active()): Span {
    const callId = ctx.getValue(CALL_ID);
    const parent = trace.getSpanContext(ctx);
    if (typeof callId !== 'number' || !parent) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    return new ForwardedSpan(name, options, parent, (span) => this.forward(callId, span));
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: unknown[]): ReturnType<F> {
    const fn = rest.at(-1) as F;
    const options = (rest.length > 1 ? rest[0] : {}) as SpanOptions;
    const ctx = (rest.length > 2 ? rest[1] : otelContext.active()) as Context;
    const span = this.startSpan(name, options, ctx);
    return otelContext.with(trace.setSpan(ctx, span), () => fn(span)) as ReturnType<F>;
  }
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

class ForwardedSpan implements Span {
  private readonly attributes: Record<string, string | number | boolean> = {};
  private status: SpanStatus | undefined;
  private readonly startTime = now();
  private ended = false;

  constructor(
    private name: string,
    private readonly options: SpanOptions,
    private readonly parent: SpanContext,
    private readonly done: (span: WireSpan) => void,
  ) {
    if (options.attributes) this.setAttributes(options.attributes);
  }

  spanContext(): SpanContext {
    return this.parent;
  }
  setAttribute(key: string, value: AttributeValue): this {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') this.attributes[key] = value;
    return this;
  }
  setAttributes(attributes: Attributes): this {
    for (const [k, v] of Object.entries(attributes)) if (v !== undefined) this.setAttribute(k, v);
    return this;
  }
  addEvent(): this {
    return this;
  }
  addLink(): this {
    return this;
  }
  addLinks(): this {
    return this;
  }
  setStatus(status: SpanStatus): this {
    this.status = status;
    return this;
  }
  updateName(name: string): this {
    this.name = name;
    return this;
  }
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.done({
      name: this.name,
      kind: this.options.kind ?? 0,
      attributes: this.attributes,
      ...(this.status ? { status: { code: this.status.code, ...(this.status.message ? { message: this.status.message } : {}) } } : {}),
      startTime: this.startTime,
      endTime: now(),
    });
  }
  isRecording(): boolean {
    return !this.ended;
  }
  recordException(): void {}
}
