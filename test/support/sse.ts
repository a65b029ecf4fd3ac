/** One server-sent event as received. */
export type SseEvent = { id?: string; event: string; data: any };

/**
 * Reads `url` as an SSE stream until an event named `until` arrives (included) or `timeoutMs`
 * passes, and returns the events in order.
 */
export async function readSse(url: string, opts: { until?: string; timeoutMs?: number; lastEventId?: string; onEvent?: (e: SseEvent) => void; headers?: Record<string, string> } = {}): Promise<SseEvent[]> {
  const res = await fetch(url, {
    headers: { accept: 'text/event-stream', ...opts.headers, ...(opts.lastEventId ? { 'last-event-id': opts.lastEventId } : {}) },
    signal: AbortSignal.timeout(opts.timeoutMs ?? 20_000),
  });
  if (!res.ok || !res.body) throw new Error(`SSE request answered ${res.status}: ${await res.text()}`);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const e: Partial<SseEvent> & { lines: string[] } = { lines: [] };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const [field, ...rest] = line.split(':');
        const value = rest.join(':').replace(/^ /, '');
        if (field === 'id') e.id = value;
        else if (field === 'event') e.event = value;
        else if (field === 'data') e.lines.push(value);
      }
      if (!e.event && e.lines.length === 0) continue;
      const ev: SseEvent = { event: e.event ?? 'message', data: JSON.parse(e.lines.join('\n')), ...(e.id ? { id: e.id } : {}) };
      events.push(ev);
      opts.onEvent?.(ev);
      if (opts.until && ev.event === opts.until) {
        await res.body.cancel().catch(() => {});
        return events;
      }
    }
  }
  return events;
}
