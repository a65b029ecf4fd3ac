import { createRequire } from 'node:module';
import type * as Tokenizer from 'gpt-tokenizer';
import type { ChatMessage } from './types.js';

/**
 * Loaded on the first count, not with the package: its BPE tables take ~16 MB of heap and ~250 ms
 * to load, which a planner that runs no agent (no model configured) would pay at every start.
 */
let tokenizer: typeof Tokenizer | undefined;
const loadTokenizer = (): typeof Tokenizer => (tokenizer ??= createRequire(import.meta.url)('gpt-tokenizer') as typeof Tokenizer);

/** Tokens of `text` with the o200k BPE (GPT-4o family); close enough for budgets on other models. */
export function countTokens(text: string): number {
  return text ? loadTokenizer().countTokens(text) : 0;
}

/** Chat framing costs a few tokens per message on top of the content (OpenAI's cookbook counts 3). */
const TOKENS_PER_MESSAGE = 3;

/** Tokens a list of chat messages takes as a prompt. */
export function countMessageTokens(messages: ChatMessage[]): number {
  let total = 3; // every reply is primed with `<|start|>assistant<|message|>`
  for (const m of messages) {
    total += TOKENS_PER_MESSAGE + countTokens(m.content ?? '');
    if (m.role === 'assistant' && m.tool_calls) {
      for (const c of m.tool_calls) total += countTokens(c.function.name) + countTokens(c.function.arguments);
    }
  }
  return total;
}
