import { z } from 'zod';

/** USD per million tokens, prompt and completion. */
export const ModelPrice = z
  .object({ inputUsdPerMTok: z.number().min(0), outputUsdPerMTok: z.number().min(0) })
  .strict();
export type ModelPrice = z.infer<typeof ModelPrice>;

export const PriceTable = z.record(z.string().min(1), ModelPrice);
export type PriceTable = z.infer<typeof PriceTable>;

/**
 * List prices of common models at the time of writing. Prices change: deployments override or
 * extend them with `TOOLPLANE_MODEL_PRICES`.
 */
export const DEFAULT_PRICES: PriceTable = {
  'gpt-4o': { inputUsdPerMTok: 2.5, outputUsdPerMTok: 10 },
  'gpt-4o-mini': { inputUsdPerMTok: 0.15, outputUsdPerMTok: 0.6 },
  'gpt-4.1': { inputUsdPerMTok: 2, outputUsdPerMTok: 8 },
  'gpt-4.1-mini': { inputUsdPerMTok: 0.4, outputUsdPerMTok: 1.6 },
  'gpt-4.1-nano': { inputUsdPerMTok: 0.1, outputUsdPerMTok: 0.4 },
  'o4-mini': { inputUsdPerMTok: 1.1, outputUsdPerMTok: 4.4 },
};

/** The price of `model`, or `undefined` when the table does not know it. */
export function priceOf(table: PriceTable, model: string): ModelPrice | undefined {
  return Object.hasOwn(table, model) ? table[model] : undefined;
}

/** Cost of one model call in USD; 0 for a model without a price. */
export function costUsd(table: PriceTable, model: string, promptTokens: number, completionTokens: number): number {
  const price = priceOf(table, model);
  if (!price) return 0;
  return (promptTokens * price.inputUsdPerMTok + completionTokens * price.outputUsdPerMTok) / 1_000_000;
}
