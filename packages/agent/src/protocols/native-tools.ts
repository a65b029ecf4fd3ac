import type { ChatReply } from '../llm/llm-caller.js';
import type { ChatMessage } from '../types.js';
import type { Decision, Observation, Protocol, RequestedCall } from './protocol.js';

const SYSTEM_PROMPT =
  'You are an agent that solves the task by calling the tools you are given. ' +
  'Call several tools in one turn when they do not depend on each other. ' +
  'When you have the answer, reply with it as plain text and call no tool.';

/** Chat Completions' native `tools` / `tool_calls`; each result goes back as its own `tool` message. */
export const nativeToolsProtocol: Protocol = {
  nativeTools: true,

  systemPrompt: () => SYSTEM_PROMPT,

  decide(reply: ChatReply): Decision {
    const thought = reply.content?.trim() || undefined;
    if (reply.toolCalls.length > 0) {
      const calls = reply.toolCalls.map((c): RequestedCall => {
        const raw = c.function.arguments.trim() || '{}';
        try {
          return { id: c.id, tool: c.function.name, arguments: JSON.parse(raw) };
        } catch {
          return { id: c.id, tool: c.function.name, arguments: raw, invalid: 'arguments are not valid JSON' };
        }
      });
      return { kind: 'tools', calls, ...(thought ? { thought } : {}) };
    }
    if (thought) return { kind: 'final', answer: thought };
    return { kind: 'invalid', correction: 'Your reply was empty. Call a tool, or reply with the final answer as text.' };
  },

  assistantMessage: (reply: ChatReply): ChatMessage => ({
    role: 'assistant',
    content: reply.content,
    ...(reply.toolCalls.length ? { tool_calls: reply.toolCalls } : {}),
  }),

  observationMessages: (observations: Observation[]): ChatMessage[] =>
    observations.map((o) => ({ role: 'tool', tool_call_id: o.id, content: o.content })),

  correctionMessage: (correction: string): ChatMessage => ({ role: 'user', content: correction }),
};
