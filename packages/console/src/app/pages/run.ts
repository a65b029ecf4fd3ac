import { api, API_BASE } from '../api.js';
import { facts, h, json } from '../dom.js';
import { ms, statusChip, time, usd } from '../format.js';
import type { PageContext, Run, RunStep, StepToolCall } from '../types.js';

const FINISHED = ['succeeded', 'failed', 'budget_exceeded'];

function meter(label: string, used: number, limit: number | undefined, show: (n: number) => string): HTMLElement {
  if (limit === undefined) return h('span', null, `${show(used)} (no ${label} budget)`);
  const share = Math.min(1, used / limit);
  return h(
    'span',
    null,
    // A native element: the console's policy allows no inline styles to size a bar with.
    h('meter', { class: used > limit ? 'over' : undefined, min: 0, max: 1, value: share, high: 0.8, 'aria-label': label }),
    ` ${show(used)} of ${show(limit)}`,
  );
}

function toolCall(c: StepToolCall): HTMLElement {
  const took = c.startedAt && c.finishedAt ? ` · ran ${ms(c.finishedAt - c.startedAt)}` : '';
  return h(
    'li',
    { 'data-tool-call': c.id },
    h('strong', null, c.tool),
    ' ',
    statusChip(c.status),
    c.callId ? [' ', h('a', { href: `/console/calls/${c.callId}`, class: 'mono' }, c.callId)] : null,
    h('span', { class: 'muted' }, took),
    h('div', { class: 'grid' }, h('div', null, h('div', { class: 'muted' }, 'arguments'), json(c.arguments)), c.error ? h('div', null, h('div', { class: 'muted' }, 'error'), h('p', { class: 'bad' }, `${c.error.code}: ${c.error.message}`)) : c.result !== undefined ? h('div', null, h('div', { class: 'muted' }, 'result'), json(c.result)) : null),
  );
}

function stepItem(step: RunStep): HTMLElement {
  const tokens = step.usage.promptTokens + step.usage.completionTokens;
  return h(
    'li',
    { 'data-step': step.index, class: step.finalAnswer !== undefined ? 'final' : undefined },
    h('strong', null, `Step ${step.index + 1}`),
    h('span', { class: 'muted' }, ` · model turn ${tokens} tokens (${step.usage.promptTokens} in, ${step.usage.completionTokens} out)`),
    step.thought ? h('p', null, step.thought) : null,
    step.correction ? h('p', { class: 'warn' }, `Sent back to the model: ${step.correction}`) : null,
    step.plan ? h('p', null, `Plan${step.plan.revision ? ` r${step.plan.revision}` : ''}: ${step.plan.status}, ${step.plan.steps.length} steps`, step.plan.problems ? ` — ${step.plan.problems.join('; ')}` : '') : null,
    step.toolCalls.length > 0 ? h('ul', null, step.toolCalls.map(toolCall)) : null,
    step.finalAnswer !== undefined ? h('p', null, h('strong', null, 'Final answer: '), step.finalAnswer) : null,
  );
}

/**
 * A run's timeline, live: the page follows the run's server-sent events (the same stream as
 * `GET /v1/runs/{id}/events`, past events first), adds each step as it arrives, and re-reads the
 * run for its usage and cost against the budget.
 */
export async function runPage(ctx: PageContext, id: string): Promise<void> {
  let run = await api<Run>('GET', `/runs/${encodeURIComponent(id)}`, undefined, ctx.signal);
  const header = h('div');
  const timeline = h('ol', { class: 'timeline', 'aria-live': 'polite' });
  const steps = new Map<number, RunStep>();
  const drawHeader = () => {
    const tokens = run.usage.totalTokens;
    const stepsUsed = run.steps.reduce((n, s) => n + s.toolCalls.length, 0);
    header.replaceChildren(
      facts([
        ['Status', [statusChip(run.status), run.budgetExceeded ? ` ${run.budgetExceeded.kind} budget: ${run.budgetExceeded.used} of ${run.budgetExceeded.limit}` : '']],
        ['Input', run.input],
        ['Model', `${run.model}${run.mode ? ` · ${run.mode}` : ''}`],
        ['Started', time(run.createdAt)],
        ['Finished', run.finishedAt ? time(run.finishedAt) : undefined],
        ['Tokens', meter('tokens', tokens, run.budget.maxTokens, String)],
        ['Cost', meter('cost', run.usage.costUsd, run.budget.maxCostUsd, usd)],
        ['Tool calls', meter('steps', stepsUsed, run.budget.maxSteps, String)],
        ['Model turns', `${run.usage.modelCalls} of at most ${run.maxIterations}`],
        ['Error', run.error ? `${run.error.code}: ${run.error.message}` : undefined],
      ]),
    );
  };
  const drawSteps = () => {
    for (const s of run.steps) if (!steps.has(s.index)) steps.set(s.index, s);
    timeline.replaceChildren(...[...steps.values()].sort((a, b) => a.index - b.index).map(stepItem));
    if (run.finalAnswer !== undefined && ![...steps.values()].some((s) => s.finalAnswer !== undefined)) {
      timeline.append(h('li', { class: 'final' }, h('strong', null, 'Final answer: '), run.finalAnswer));
    }
  };
  let reading = false;
  const reread = async () => {
    if (reading) return;
    reading = true;
    try {
      run = await api<Run>('GET', `/runs/${encodeURIComponent(id)}`, undefined, ctx.signal);
      drawHeader();
      drawSteps();
    } finally {
      reading = false;
    }
  };
  drawHeader();
  drawSteps();
  ctx.main.replaceChildren(h('h1', null, 'Run ', h('span', { class: 'mono' }, id)), header, h('h2', null, 'Timeline'), timeline);

  const events = new EventSource(`${API_BASE}/runs/${encodeURIComponent(id)}/events`);
  ctx.signal.addEventListener('abort', () => events.close());
  events.addEventListener('step', (e) => {
    const { step } = JSON.parse((e as MessageEvent<string>).data) as { step: RunStep };
    steps.set(step.index, step);
    run.steps = [...steps.values()];
    drawSteps();
    void reread().catch(() => {});
  });
  events.addEventListener('status', (e) => {
    run.status = (JSON.parse((e as MessageEvent<string>).data) as { status: string }).status;
    drawHeader();
  });
  for (const type of ['plan', 'plan_step']) events.addEventListener(type, () => void reread().catch(() => {}));
  events.addEventListener('finished', (e) => {
    run = (JSON.parse((e as MessageEvent<string>).data) as { run: Run }).run;
    // The stream ends after this; without closing, EventSource would reconnect and replay nothing forever.
    events.close();
    for (const s of run.steps) steps.set(s.index, s);
    drawHeader();
    drawSteps();
  });
  if (FINISHED.includes(run.status) && run.steps.length > 0) drawSteps();
}
