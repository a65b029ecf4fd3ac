import type { Express, Response } from 'express';

const MATCHED = Symbol('matched route');

/**
 * Remembers the route template (`/v1/calls/:id`) when express matches a route of `app`. Read later
 * it would be wrong: by the time an error reaches the error handler, the router has reset
 * `req.baseUrl` (`/v1/calls` would read `/calls`). Metrics and spans label requests with it, never
 * with the path, which holds ids.
 *
 * The router sets `req.route` on a match; the accessor that catches it is defined once on the app's
 * request prototype, which express apps mounted in it (the queue board) inherit. Defined on every
 * request instead, it gave each request object a shape of its own (~13 % of a planner's CPU in sync
 * calls, measured side by side).
 */
export function captureRouteTemplates(app: Express): void {
  Object.defineProperty(app.request, 'route', {
    configurable: true,
    enumerable: true,
    get(this: Record<symbol, unknown>) {
      return this[MATCHED];
    },
    set(this: Express['request'] & Record<symbol, unknown>, value: { path?: unknown } | undefined) {
      this[MATCHED] = value;
      if (typeof value?.path === 'string') this.res!.locals.routeTemplate = this.baseUrl + value.path;
    },
  });
}

/** The matched route template, or `undefined` when no route matched. */
export function routeTemplateOf(res: Response): string | undefined {
  return res.locals.routeTemplate as string | undefined;
}
