import type { ChatReply, ToolDefinition } from '../llm/llm-caller.js';
import type { ChatMessage } from '../types.js';
import type { Decision, Observation, Protocol, RequestedCall } from './protocol.js';

const FORMAT = [
  'Thought: <your reasoning>',
  'Action: <tool name>',
  'Input: <the tool arguments as one JSON object>',
  '(repeat Action/Input to call several tools at once; then stop and wait for the Observations)',
  '',
  'or, when you know the answer:',
  '',
  'Thought: <your reasoning>',
  'Final Answer: <the answer>',
].join('\n');

type Label = 'thought' | 'action' | 'input' | 'final' | 'observation';

/**
 * A label at the start of a line, tolerating markdown bold, `Action Input` and `Final-Answer` spellings.
 * The model sometimes writes its own `Observation:`; everything from there on is invented and dropped.
 */
const LABEL =
  /^[ \t>*_#-]*(thought|action[ _-]?input|action|input|final[ _-]?answer|observation)[ \t*_]*:[ \t*_]*/gim;

function labelOf(word: string): Label {
  const w = word.toLowerCase().replace(/[ _-]/g, '');
  if (w === 'actioninput' || w === 'input') return 'input';
  if (w === 'finalanswer') return 'final';
  return w as Label;
}

/** The text split into labelled sections, in order. */
function sections(text: string): Array<{ label: Label; body: string }> {
  const marks = [...text.matchAll(LABEL)].map((m) => ({ label: labelOf(m[1]!), start: m.index, end: m.index + m[0].length }));
  return marks.map((m, i) => ({ label: m.label, body: text.slice(m.end, marks[i + 1]?.start ?? text.length).trim() }));
}

function stripFences(text: string): string {
  return text.replace(/^```[a-zA-Z]*\s*\n?/, '').replace(/\n?```\s*$/, '').trim();
}

/** The first balanced JSON object or array in `text`, skipping braces inside strings. */
function firstJsonValue(text: string): string | undefined {
  const start = text.search(/[{[]/);
  if (start < 0) return undefined;
  const open = text[start]!;
  const close = open === '{' ? '}' : ']';
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === open) depth++;
    else if (ch === close && --depth === 0) return text.slice(start, i + 1);
  }
  return undefined;
}

/** Reads `Input:` text as JSON: plain, fenced, or with prose around the object. */
export function parseActionInput(raw: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  const text = stripFences(raw);
  if (!text) return { ok: true, value: {} };
  for (const candidate of [text, firstJsonValue(text)]) {
    if (candidate === undefined) continue;
    try {
      return { ok: true, value: JSON.parse(candidate) };
    } catch {
      // try the next reading
    }
  }
  return { ok: false, problem: `the Input is not valid JSON: ${text.slice(0, 200)}` };
}

/**
 * Parses one reply of the text protocol. Never throws: anything unusable becomes a `correction`
 * that tells the model what was wrong and shows the format again.
 */
export function parseTextReply(content: string): Decision {
  const all = sections(content.replace(/\r\n/g, '\n'));
  const cut = all.findIndex((s) => s.label === 'observation');
  const parts = cut >= 0 ? all.slice(0, cut) : all;
  const thought = parts.find((s) => s.label === 'thought')?.body || undefined;
  const withThought = thought ? { thought } : {};
  const correct = (problem: string): Decision => ({
    kind: 'invalid',
    ...withThought,
    correction: `Your last reply could not be used: ${problem}. Answer in exactly this format:\n\n${FORMAT}`,
  });

  const calls: RequestedCall[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    if (part.label === 'final' && calls.length === 0) {
      if (!part.body) return correct('the Final Answer is empty');
      return { kind: 'final', ...withThought, answer: part.body };
    }
    if (part.label === 'input' && parts[i - 1]?.label !== 'action') return correct('an Input has no Action line before it');
    if (part.label !== 'action') continue;
    const tool = part.body.split('\n')[0]!.trim().replace(/^[`'"]+|[`'"().]+$/g, '');
    if (!tool) return correct('an Action names no tool');
    const next = parts[i + 1];
    if (next?.label !== 'input') return correct(`the Action ${tool} has no Input line (write "Input: {}" for no arguments)`);
    const input = parseActionInput(next.body);
    if (!input.ok) return correct(`${input.problem} (Action ${tool})`);
    calls.push({ id: `call_${calls.length + 1}`, tool, arguments: input.value });
    i++;
  }
  if (calls.length > 0) return { kind: 'tools', ...withThought, calls };
  if (parts.length === 0) return correct('it has none of the lines Thought, Action, Input or Final Answer');
  return correct('it has neither an Action nor a Final Answer');
}

function describeTools(tools: ToolDefinition[]): string {
  if (tools.length === 0) return '(no tools: answer directly)';
  return tools
    .map((t) => `- ${t.name}: ${t.description}\n  Input JSON Schema: ${JSON.stringify(t.parameters)}`)
    .join('\n');
}

/** `Thought / Action / Input / Final Answer` in plain text, for models without native tool calling. */
export const textProtocol: Protocol = {
  nativeTools: false,

  systemPrompt: (tools: ToolDefinition[]) =>
    `You are an agent that solves the task with tools. Tools:\n${describeTools(tools)}\n\n` +
    `Reply in exactly this format:\n\n${FORMAT}\n\nNever write Observation lines yourself: they come back to you.`,

  decide: (reply: ChatReply): Decision => parseTextReply(reply.content ?? ''),

  assistantMessage: (reply: ChatReply): ChatMessage => ({ role: 'assistant', content: reply.content ?? '' }),

  observationMessages: (observations: Observation[]): ChatMessage[] =>
    observations.map((o) => ({ role: 'user', content: `Observation (${o.id}, ${o.tool}): ${o.content}` })),

  correctionMessage: (correction: string): ChatMessage => ({ role: 'user', content: correction }),
};
