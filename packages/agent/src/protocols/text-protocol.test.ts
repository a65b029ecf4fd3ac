import { describe, expect, test } from 'vitest';
import { parseActionInput, parseTextReply } from './text-protocol.js';

describe('text protocol parser', () => {
  test('reads a thought, an action and its input', () => {
    expect(parseTextReply('Thought: I should add\nAction: add\nInput: {"a": 1, "b": 2}')).toEqual({
      kind: 'tools',
      thought: 'I should add',
      calls: [{ id: 'call_1', tool: 'add', arguments: { a: 1, b: 2 } }],
    });
  });

  test('reads multi-line, fenced JSON input and several actions for parallel calls', () => {
    const reply = [
      '**Thought:** two sums at once',
      'Action: `add`',
      'Action Input:',
      '```json',
      '{',
      '  "a": 1,',
      '  "b": {"nested": "}"}',
      '}',
      '```',
      'Action: mul',
      'Input: here you go {"a": 2, "b": 3} thanks',
    ].join('\n');
    const d = parseTextReply(reply);
    expect(d).toMatchObject({ kind: 'tools', thought: 'two sums at once' });
    expect(d.kind === 'tools' && d.calls).toEqual([
      { id: 'call_1', tool: 'add', arguments: { a: 1, b: { nested: '}' } } },
      { id: 'call_2', tool: 'mul', arguments: { a: 2, b: 3 } },
    ]);
  });

  test('reads a final answer, multi-line', () => {
    expect(parseTextReply('Thought: done\nFinal Answer: 42\nand more')).toEqual({
      kind: 'final',
      thought: 'done',
      answer: '42\nand more',
    });
  });

  test('drops observations the model invented', () => {
    const d = parseTextReply('Action: add\nInput: {"a":1,"b":2}\nObservation: 3\nFinal Answer: 3');
    expect(d).toMatchObject({ kind: 'tools', calls: [{ tool: 'add' }] });
  });

  test.each([
    ['garbage', 'I think the answer might be something', /none of the lines/],
    ['action without input', 'Thought: x\nAction: add', /has no Input line/],
    ['input without action', 'Thought: x\nInput: {}', /no Action line/],
    ['broken JSON', 'Action: add\nInput: {"a": 1,', /not valid JSON/],
    ['empty final answer', 'Final Answer:   ', /Final Answer is empty/],
    ['only a thought', 'Thought: hmm', /neither an Action nor a Final Answer/],
    ['empty action', 'Action:\nInput: {}', /names no tool/],
  ])('%s gives a correction with the format, not a crash', (_name, reply, problem) => {
    const d = parseTextReply(reply);
    expect(d.kind).toBe('invalid');
    if (d.kind !== 'invalid') return;
    expect(d.correction).toMatch(problem);
    expect(d.correction).toContain('Final Answer: <the answer>');
  });

  test('an empty Input means no arguments', () => {
    expect(parseActionInput('')).toEqual({ ok: true, value: {} });
  });
});
