import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { defineTool } from './index.js';

describe('defineTool', () => {
  test('a zod schema becomes the registered JSON Schema, and args are typed from it', async () => {
    const tool = defineTool({
      name: 'hello',
      description: 'Greets',
      parameters: z.object({ name: z.string(), times: z.number().int().default(1) }),
      run: ({ name, times }) => `${name}`.repeat(times),
    });
    expect(tool.parameters).toMatchObject({ type: 'object', properties: { name: { type: 'string' } }, required: ['name', 'times'] });
    expect(tool.parameters).not.toHaveProperty('$schema');
    expect(await tool.run({ name: 'a', times: 2 }, {} as never)).toBe('aa');
    expect(tool.toolplane).toBe(1);
  });

  test('a plain JSON Schema is kept as it is', () => {
    const parameters = { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] };
    expect(defineTool({ name: 'x', description: 'd', parameters, run: () => 1 }).parameters).toEqual(parameters);
  });
});
