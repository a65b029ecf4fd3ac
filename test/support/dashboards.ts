import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT } from './services.js';

/** One PromQL query of a Grafana panel. */
export type PanelQuery = { panel: string; refId: string; expr: string };

type Panel = { title?: string; panels?: Panel[]; targets?: Array<{ refId?: string; expr?: string; hide?: boolean }> };

/**
 * Every PromQL expression of every panel of a dashboard JSON file, rows' nested panels included,
 * so the dashboard file stays the single source of what the tests query.
 */
export function panelQueries(dashboardPath: string): PanelQuery[] {
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as { panels?: Panel[] };
  const out: PanelQuery[] = [];
  const walk = (panels: Panel[] = []) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        if (t.expr && !t.hide) out.push({ panel: p.title ?? '(untitled)', refId: t.refId ?? '?', expr: t.expr });
      }
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

/** Replaces Grafana's variables (`$__rate_interval`, `$tool`, `${tool}`) by values Prometheus accepts. */
export function substituteVariables(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced?: string, bare?: string) => {
    const name = (braced ?? bare)!;
    const value = vars[name];
    if (value === undefined) throw new Error(`no value for dashboard variable ${whole} in: ${expr}`);
    return value;
  });
}

/** Every alerting and recording rule of a Prometheus rules file. */
export function ruleExpressions(rulesPath: string): Array<{ name: string; expr: string }> {
  const file = parse(readFileSync(rulesPath, 'utf8')) as {
    groups: Array<{ rules: Array<{ alert?: string; record?: string; expr: string }> }>;
  };
  return file.groups.flatMap((g) => g.rules.map((r) => ({ name: r.alert ?? r.record ?? '?', expr: String(r.expr) })));
}

export const DASHBOARDS_DIR = join(ROOT, 'infra', 'grafana', 'dashboards');
export const PROMETHEUS_DIR = join(ROOT, 'infra', 'prometheus');
