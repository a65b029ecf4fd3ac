import { chip } from './dom.js';

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—';
  if (value < 1000) return `${Math.round(value)} ms`;
  if (value < 60_000) return `${(value / 1000).toFixed(1)} s`;
  return `${Math.round(value / 60_000)} min`;
}

export function time(value: string | number | undefined): string {
  if (value === undefined) return '—';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '—' : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function percent(value: number | null): string {
  return value === null ? '—' : `${(value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0)} %`;
}

export function usd(value: number): string {
  return `$${value.toFixed(value < 0.01 ? 5 : 3)}`;
}

export function statusChip(status: string): HTMLElement {
  switch (status) {
    case 'succeeded':
    case 'AVAILABLE':
    case 'closed':
      return chip(status.toLowerCase(), 'ok');
    case 'failed':
    case 'UNAVAILABLE':
    case 'open':
    case 'budget_exceeded':
      return chip(status.toLowerCase().replace('_', ' '), 'bad');
    case 'awaiting_approval':
    case 'waiting_approval':
    case 'RATE_LIMITED':
    case 'half_open':
    case 'running':
      return chip(status.toLowerCase().replace('_', ' '), 'warn');
    default:
      return chip(status.replace('_', ' '));
  }
}
